"""A quick job: pretends to fetch a few prices and prints them."""
import random
import time

for symbol in ("ACME", "GLOBEX", "INITECH"):
    price = round(random.uniform(10, 200), 2)
    print(f"{time.strftime('%H:%M:%S')} {symbol} {price}")
print("fetched 3 prices")
