/* placeholder: being written */
int eph_placeholder_agent;
