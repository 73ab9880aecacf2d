// Tests that need something this machine may lack are reported as *ignored* (with the
// reason), never as passed. libtest's `ignore` is static, so the decision is made here,
// when the tests are built:
// - the PostgreSQL variants of the database tests need ICB_TEST_POSTGRES_URL;
// - the console's browser test needs Debian's Chromium and tests/browser/node_modules
//   (`.ci/run` installs both and sets ICB_TEST_BROWSER=required, which runs the test
//   whatever is present, so that a missing piece fails it instead of hiding it).
use std::path::Path;

const CHROMIUM: &str = "/usr/bin/chromium";
const PLAYWRIGHT: &str = "tests/browser/node_modules/playwright-core";

fn main() {
    // `sqlx::migrate!` embeds the migrations when the crate is built; cargo, once told what
    // to watch here, would not rebuild it for a new migration file.
    println!("cargo:rerun-if-changed=migrations");

    println!("cargo:rustc-check-cfg=cfg(icb_postgres)");
    println!("cargo:rerun-if-env-changed=ICB_TEST_POSTGRES_URL");
    if std::env::var_os("ICB_TEST_POSTGRES_URL").is_some_and(|url| !url.is_empty()) {
        println!("cargo:rustc-cfg=icb_postgres");
    }

    println!("cargo:rustc-check-cfg=cfg(icb_browser)");
    println!("cargo:rerun-if-env-changed=ICB_TEST_BROWSER");
    // Directories, so that installing Chromium or the node modules later rebuilds the
    // tests (cargo compares the newest modification time found under a directory).
    println!("cargo:rerun-if-changed=tests/browser");
    println!("cargo:rerun-if-changed=/usr/bin");
    let required = std::env::var("ICB_TEST_BROWSER").as_deref() == Ok("required");
    if required || (Path::new(CHROMIUM).exists() && Path::new(PLAYWRIGHT).exists()) {
        println!("cargo:rustc-cfg=icb_browser");
    }
}
