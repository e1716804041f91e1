"""tinhgon's faces: the command line (and, later, the HTTP service)."""
