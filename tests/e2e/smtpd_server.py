"""A real SMTP server on 127.0.0.1 for the mail tests (Debian's python3-aiosmtpd), run with
/usr/bin/python3 as its own process so that a test can stop and restart it:

    smtpd_server.py --port PORT --maildir DIR [--cert C --key K] [--user U --password P]
                    [--ready FILE]

Each accepted message is written to DIR/new/ (aiosmtpd's Mailbox handler: a Maildir) and its
envelope (MAIL FROM, RCPT TO) as JSON to DIR/envelopes/. With --cert/--key it offers
STARTTLS; with --user/--password it requires AUTH (PLAIN or LOGIN), over TLS when TLS is
offered. With --silent-quit it never answers QUIT (a server that hangs after accepting a
message). --ready names a file written once the server listens."""

import argparse
import asyncio
import json
import os
import signal
import ssl
import threading
import uuid

from aiosmtpd.controller import Controller
from aiosmtpd.handlers import Mailbox
from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword


class Handler(Mailbox):
    def __init__(self, maildir):
        super().__init__(maildir)
        self.env_dir = os.path.join(maildir, "envelopes")
        os.makedirs(self.env_dir, exist_ok=True)

    async def handle_DATA(self, server, session, envelope):
        with open(os.path.join(self.env_dir, uuid.uuid4().hex + ".json"), "w") as f:
            json.dump({"mail_from": envelope.mail_from, "rcpt_tos": envelope.rcpt_tos,
                       "raw": envelope.original_content.decode("utf-8", "replace")}, f)
        return await super().handle_DATA(server, session, envelope)


class SilentQuitSMTP(SMTP):
    async def smtp_QUIT(self, arg):
        await asyncio.sleep(3600)


class SilentQuitController(Controller):
    def factory(self):
        return SilentQuitSMTP(self.handler, **self.SMTP_kwargs)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--maildir", required=True)
    ap.add_argument("--cert")
    ap.add_argument("--key")
    ap.add_argument("--user")
    ap.add_argument("--password")
    ap.add_argument("--ready")
    ap.add_argument("--silent-quit", action="store_true")
    a = ap.parse_args()

    kw = {}
    if a.cert:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(a.cert, a.key)
        kw["tls_context"] = ctx
        kw["require_starttls"] = True
    if a.user:
        def auth(server, session, envelope, mechanism, data):
            ok = (isinstance(data, LoginPassword) and data.login == a.user.encode()
                  and data.password == a.password.encode())
            return AuthResult(success=ok, handled=False)

        kw["authenticator"] = auth
        kw["auth_required"] = True
        kw["auth_require_tls"] = bool(a.cert)
    cls = SilentQuitController if a.silent_quit else Controller
    ctl = cls(Handler(a.maildir), hostname="127.0.0.1", port=a.port,
                     server_hostname="localhost", **kw)
    ctl.start()
    if a.ready:
        with open(a.ready, "w") as f:
            f.write("ok\n")
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    done.wait()
    ctl.stop()


if __name__ == "__main__":
    main()
