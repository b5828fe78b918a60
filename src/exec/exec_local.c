/* placeholder: being written */
int eph_placeholder_exec_local;
