"""Load tests of the device runtime API; they speak only the public HTTP protocol."""
