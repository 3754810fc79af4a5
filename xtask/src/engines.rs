//! The three browser engines the tests run on, and what each needs from Debian.

use std::fmt;

use clap::ValueEnum;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Engine {
    /// Debian's Chromium + chromedriver
    Chromium,
    /// Debian's Firefox ESR + geckodriver (built with cargo install)
    Firefox,
    /// WebKitGTK's MiniBrowser + WebKitWebDriver, under xvfb-run
    Webkit,
}

impl fmt::Display for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let value = self.to_possible_value().expect("no engine is skipped");
        f.pad(value.get_name())
    }
}

impl Engine {
    /// The engines `--browser` selects: one, or all of them in run order.
    pub fn selected(browser: Option<Engine>) -> Vec<Engine> {
        match browser {
            Some(e) => vec![e],
            None => Engine::value_variants().to_vec(),
        }
    }

    /// Debian packages this engine needs, each with a file that shows it is installed.
    pub fn apt_packages(self) -> &'static [(&'static str, &'static str)] {
        match self {
            Engine::Chromium => &[("chromium", CHROMIUM), ("chromium-driver", CHROMEDRIVER)],
            Engine::Firefox => &[("firefox-esr", FIREFOX)],
            Engine::Webkit => &[
                ("webkit2gtk-driver", WEBKIT_DRIVER),
                ("xvfb", XVFB_RUN),
                // xvfb-run needs xauth, which xvfb only recommends.
                ("xauth", "/usr/bin/xauth"),
            ],
        }
    }

    /// The environment variable that points wasm-bindgen-test-runner at this engine's driver.
    pub fn runner_driver_var(self) -> &'static str {
        match self {
            Engine::Chromium => "CHROMEDRIVER",
            Engine::Firefox => "GECKODRIVER",
            // The runner knows WebKitWebDriver as a Safari driver: same protocol.
            Engine::Webkit => "SAFARIDRIVER",
        }
    }

    /// WebKitGTK needs an X display even when nothing is shown.
    pub fn needs_display(self) -> bool {
        self == Engine::Webkit
    }
}

pub const CHROMIUM: &str = "/usr/bin/chromium";
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// The binary itself: `/usr/bin/firefox-esr` is a launcher script.
pub const FIREFOX: &str = "/usr/lib/firefox-esr/firefox-esr";
pub const WEBKIT_DRIVER: &str = "/usr/bin/WebKitWebDriver";
pub const XVFB_RUN: &str = "/usr/bin/xvfb-run";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_selection() {
        let names: Vec<String> = Engine::value_variants()
            .iter()
            .map(Engine::to_string)
            .collect();
        assert_eq!(names, ["chromium", "firefox", "webkit"]);
        assert_eq!(Engine::selected(None).len(), 3);
        assert_eq!(Engine::selected(Some(Engine::Webkit)), [Engine::Webkit]);
    }

    #[test]
    fn every_package_has_an_absolute_marker_file() {
        for e in Engine::value_variants() {
            for (package, file) in e.apt_packages() {
                assert!(file.starts_with('/'), "{package}: {file}");
            }
        }
    }
}
