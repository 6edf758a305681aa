fn main() {
    // embed_migrations! reads this folder at compile time: rebuild when it changes.
    println!("cargo:rerun-if-changed=../../migrations");
}
