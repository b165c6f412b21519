// The migrations are embedded at compile time (diesel_migrations); rebuild
// when they change.
fn main() {
    println!("cargo:rerun-if-changed=../../migrations");
}
