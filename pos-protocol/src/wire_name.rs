//! Enums of unit variants written as JSON strings (`"requires_capture"`), as serde's derive
//! with `rename_all = "snake_case"` writes and reads them, but compiled small.
//!
//! The derive reads such an enum through `deserialize_enum`, which serde_json compiles once
//! per enum with the string and the `{"variant": null}` forms, about 1.6–3.3 KB of wasm each:
//! ~30 KB for the 18 enums the SDK reads. [`wire_names!`] gives each enum its names once
//! (`as_str`), and every enum is read by one function, [`read_name`], that looks the string up
//! in the enum's table. The JSON is the derive's, byte for byte, and so are the errors for an
//! unknown name; only the map form, which nothing writes, is refused.

use std::fmt;

use serde::de::{self, Deserializer, Visitor};

#[doc(hidden)]
pub use serde as __serde;

/// The index in `names` of the JSON string `d` holds; a name not listed is `other`'s index
/// when there is one (serde's `#[serde(other)]`), an "unknown variant" error otherwise.
pub fn read_name<'de, D: Deserializer<'de>>(
    d: D,
    names: &'static [&'static str],
    other: Option<usize>,
) -> Result<usize, D::Error> {
    d.deserialize_str(NameVisitor { names, other })
}

struct NameVisitor {
    names: &'static [&'static str],
    other: Option<usize>,
}

impl Visitor<'_> for NameVisitor {
    type Value = usize;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("variant identifier")
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<usize, E> {
        self.names
            .iter()
            .position(|n| *n == s)
            .or(self.other)
            .ok_or_else(|| E::unknown_variant(s, self.names))
    }
}

/// Gives an enum of unit variants its names on the wire: `as_str`, `Serialize` and
/// `Deserialize` (see the module). Every variant is listed once (the `match` in `as_str` is
/// exhaustive, so the compiler checks none is left out); `other V` reads names not listed
/// as `V`.
///
/// ```
/// #[derive(Debug, Clone, Copy, PartialEq, Eq)]
/// pub enum Mode { Automatic, Manual }
/// pos_protocol::wire_names!(Mode { Automatic => "automatic", Manual => "manual" });
/// assert_eq!(serde_json::to_string(&Mode::Manual).unwrap(), "\"manual\"");
/// ```
#[macro_export]
macro_rules! wire_names {
    ($Enum:ident { $($Variant:ident => $name:literal),+ $(,)? } $(other $Other:ident)?) => {
        impl $Enum {
            /// Its name on the wire.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$Variant => $name,)+
                }
            }
        }

        impl $crate::wire_name::__serde::Serialize for $Enum {
            fn serialize<S: $crate::wire_name::__serde::Serializer>(
                &self,
                s: S,
            ) -> ::core::result::Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> $crate::wire_name::__serde::Deserialize<'de> for $Enum {
            fn deserialize<D: $crate::wire_name::__serde::Deserializer<'de>>(
                d: D,
            ) -> ::core::result::Result<Self, D::Error> {
                const NAMES: &[&str] = &[$($name),+];
                const VALUES: &[$Enum] = &[$($Enum::$Variant),+];
                let other: ::core::option::Option<usize> = ::core::option::Option::None
                    $(.or(VALUES.iter().position(|v| *v == $Enum::$Other)))?;
                let i = $crate::wire_name::read_name(d, NAMES, other)?;
                VALUES.get(i).copied().ok_or_else(|| {
                    <D::Error as $crate::wire_name::__serde::de::Error>::custom("no such variant")
                })
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use serde::{Deserialize, Serialize};

    /// What the macro replaces, for comparison.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(rename_all = "snake_case")]
    enum Derived {
        Automatic,
        RequiresCapture,
        #[serde(rename = "websocket")]
        WebSocket,
    }

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Named {
        Automatic,
        RequiresCapture,
        WebSocket,
    }
    crate::wire_names!(Named {
        Automatic => "automatic",
        RequiresCapture => "requires_capture",
        WebSocket => "websocket",
    });

    #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(rename_all = "snake_case")]
    enum DerivedOther {
        Busy,
        #[serde(other)]
        Unknown,
    }

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum NamedOther {
        Busy,
        Unknown,
    }
    crate::wire_names!(NamedOther { Busy => "busy", Unknown => "unknown" } other Unknown);

    fn pairs() -> [(Derived, Named); 3] {
        [
            (Derived::Automatic, Named::Automatic),
            (Derived::RequiresCapture, Named::RequiresCapture),
            (Derived::WebSocket, Named::WebSocket),
        ]
    }

    #[test]
    fn written_and_read_as_the_derive_does() {
        for (derived, named) in pairs() {
            let text = serde_json::to_string(&derived).unwrap();
            assert_eq!(serde_json::to_string(&named).unwrap(), text);
            assert_eq!(named.as_str(), text.trim_matches('"'));
            assert_eq!(serde_json::from_str::<Named>(&text).unwrap(), named);
            // In a struct, a list and a map, and with an escape in the string.
            let nested = format!("{{\"a\":[{text}],\"b\":{{\"k\":{text}}}}}");
            let v: serde_json::Value = serde_json::from_str(&nested).unwrap();
            assert_eq!(
                serde_json::from_value::<Named>(v["a"][0].clone()).unwrap(),
                named
            );
        }
        assert_eq!(
            serde_json::from_str::<Named>(r#""autom\u0061tic""#).unwrap(),
            Named::Automatic
        );
    }

    #[test]
    fn an_unknown_name_is_refused_with_the_derive_s_message() {
        for bad in [r#""manual""#, r#""Automatic""#, r#""""#] {
            let derived = serde_json::from_str::<Derived>(bad)
                .unwrap_err()
                .to_string();
            let named = serde_json::from_str::<Named>(bad).unwrap_err().to_string();
            assert_eq!(named, derived, "{bad}");
            assert!(named.contains("unknown variant"), "{named}");
        }
        // Not a string: refused by both (the wording differs).
        for bad in ["1", "null", "[]", "{}", "true"] {
            assert!(serde_json::from_str::<Derived>(bad).is_err(), "{bad}");
            assert!(serde_json::from_str::<Named>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn other_reads_every_unlisted_name() {
        for (text, derived, named) in [
            (r#""busy""#, DerivedOther::Busy, NamedOther::Busy),
            (r#""unknown""#, DerivedOther::Unknown, NamedOther::Unknown),
            (
                r#""from_a_newer_reader""#,
                DerivedOther::Unknown,
                NamedOther::Unknown,
            ),
        ] {
            assert_eq!(serde_json::from_str::<DerivedOther>(text).unwrap(), derived);
            assert_eq!(serde_json::from_str::<NamedOther>(text).unwrap(), named);
        }
        assert_eq!(
            serde_json::to_string(&NamedOther::Unknown).unwrap(),
            r#""unknown""#
        );
    }
}
