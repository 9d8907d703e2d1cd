//! Where the bytes of an image come from: fetch, resume, detect, decode.
