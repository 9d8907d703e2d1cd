//! `preseed`: generate deployment configs the way MAAS does for custom images.
fn main() {
    eprintln!("preseed: not implemented yet (issue 7)");
    std::process::exit(2);
}
