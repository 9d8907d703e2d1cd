//! Small composable I/O adapters, one type a file.
