//! Records and their files.
