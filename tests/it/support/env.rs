//! Environment variables that tests hand to calops by name (`env:NAME` references in a storage
//! URL, registry credentials read from named variables), which calops then reads from the
//! process environment.
//!
//! They are set once, before `main` and so before any test thread exists: changing the
//! environment while other threads run is undefined behaviour (glibc's `setenv` against a
//! concurrent `getenv`), and every test shares this one process. A test checks the values it
//! relies on with [`expect`]; nothing sets variables while tests run.

const TEST_ENV: &[(&str, &str)] = &[
    // ics: S3 credentials by reference.
    ("CALOPS_TEST_S3_KEY", "AKIDCALOPSTEST"),
    ("CALOPS_TEST_S3_SECRET", "calops-test-secret-value"),
    // image: registry credentials (htpasswd) ...
    ("CALOPS_IT_USER", "calops"),
    ("CALOPS_IT_BAD_PASS", "wrong-pass"),
    ("CALOPS_IT_PASS", "s3cret-pass"),
    // ... and for the token flow.
    ("CALOPS_IT_TOKEN_USER", "robot"),
    ("CALOPS_IT_TOKEN_BAD", "nope"),
    ("CALOPS_IT_TOKEN_PASS", "t0ken-pass"),
    // caldav: the calendar account's password, by reference.
    ("CALOPS_IT_CALDAV_PASS", "s3cret-calendar-pw"),
];

#[ctor::ctor(unsafe)]
fn set_test_env() {
    for (name, value) in TEST_ENV {
        std::env::set_var(name, value);
    }
}

/// Panic unless each variable holds the value the test relies on (set before `main`, above).
pub fn expect(vars: &[(&str, &str)]) {
    for (name, value) in vars {
        assert_eq!(
            std::env::var(name).ok().as_deref(),
            Some(*value),
            "{name} must be set before main by tests/it/support/env.rs"
        );
    }
}

#[test]
fn the_test_environment_is_set_before_main() {
    expect(TEST_ENV);
}
