//! MAAS-style config generation (issue 7).
