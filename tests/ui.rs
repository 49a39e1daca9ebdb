//! Compile-time behaviour of `#[redis_cached]`: each misuse in `ui/fail` must fail with the
//! diagnostic in its `.stderr`, and each program in `ui/pass` must compile.
//!
//! Regenerate the expected output with `TRYBUILD=overwrite cargo test --test ui`, then
//! read the diff.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/fail/*.rs");
    t.pass("tests/ui/pass/*.rs");
}
