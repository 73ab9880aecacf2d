// The integration suite runs each database test on SQLite and, when ICB_TEST_POSTGRES_URL
// is set, on PostgreSQL too; without it the PostgreSQL variants are reported as ignored
// (skipped), not passed. The cfg is decided here because libtest's `ignore` is static.
fn main() {
    println!("cargo:rustc-check-cfg=cfg(icb_postgres)");
    println!("cargo:rerun-if-env-changed=ICB_TEST_POSTGRES_URL");
    if std::env::var_os("ICB_TEST_POSTGRES_URL").is_some_and(|url| !url.is_empty()) {
        println!("cargo:rustc-cfg=icb_postgres");
    }
}
