//! Validation of what the caller passes in: amounts, currencies, metadata.

use pos_protocol::SortedMap;

use crate::error::PosError;

/// Largest amount accepted, in minor units (as Stripe: 999,999.99 in a two-decimal currency).
pub const MAX_AMOUNT: u64 = 99_999_999;
pub const MAX_METADATA_KEYS: usize = 50;
pub const MAX_METADATA_KEY_CHARS: usize = 40;
pub const MAX_METADATA_VALUE_CHARS: usize = 500;

/// An amount from JS (a number) as minor units.
pub fn amount(value: f64) -> Result<u64, PosError> {
    if !value.is_finite() {
        return Err(PosError::InvalidAmount(
            "amount must be an integer number of minor units, got NaN, Infinity or null".into(),
        ));
    }
    if value.fract() != 0.0 {
        return Err(PosError::InvalidAmount(format!(
            "amount must be an integer number of minor units, got {value}"
        )));
    }
    if value < 1.0 || value > MAX_AMOUNT as f64 {
        return Err(PosError::InvalidAmount(format!(
            "amount must be between 1 and {MAX_AMOUNT} minor units, got {value}"
        )));
    }
    Ok(value as u64)
}

/// A currency: a lowercase ISO 4217 code of a currency in use (not a fund, a metal or a
/// superseded code), from `currency`'s table.
pub fn currency(code: &str) -> Result<String, PosError> {
    match crate::currency::minor_units(code) {
        Some(_) => Ok(code.to_string()),
        None => Err(PosError::InvalidCurrency(format!(
            "currency must be a lowercase ISO 4217 code in use, such as \"usd\", got {code:?}"
        ))),
    }
}

/// How many decimals the currency's minor unit has (JPY 0, USD 2, BHD 3); 2 if unknown.
pub fn minor_units(code: &str) -> u32 {
    crate::currency::minor_units(&code.to_ascii_lowercase()).unwrap_or(2)
}

/// An amount in minor units written in major units for messages: 1250 usd → "12.50 usd".
pub fn display_amount(amount: u64, currency: &str) -> String {
    let units = minor_units(currency);
    if units == 0 {
        return format!("{amount} {currency}");
    }
    let scale = 10u64.pow(units);
    format!(
        "{}.{:0width$} {currency}",
        amount / scale,
        amount % scale,
        width = units as usize
    )
}

/// Metadata: at most 50 keys of at most 40 characters, values of at most 500.
pub fn metadata(map: &SortedMap<String>) -> Result<(), PosError> {
    if map.len() > MAX_METADATA_KEYS {
        return Err(PosError::InvalidMetadata(format!(
            "metadata may hold at most {MAX_METADATA_KEYS} keys, got {}",
            map.len()
        )));
    }
    for (k, v) in map {
        if k.is_empty() || k.chars().count() > MAX_METADATA_KEY_CHARS {
            return Err(PosError::InvalidMetadata(format!(
                "metadata keys must be 1 to {MAX_METADATA_KEY_CHARS} characters"
            )));
        }
        if v.chars().count() > MAX_METADATA_VALUE_CHARS {
            return Err(PosError::InvalidMetadata(format!(
                "metadata value for {k:?} exceeds {MAX_METADATA_VALUE_CHARS} characters"
            )));
        }
    }
    Ok(())
}

/// A backend base URL: http(s), no trailing slash.
pub fn backend_url(url: &str) -> Result<String, PosError> {
    let trimmed = url.trim().trim_end_matches('/');
    let refuse = |why: String| Err(PosError::InvalidArgument(format!("backendUrl {why}")));
    // Never echoed with an `@` in it: that may be a password.
    let shown = || match trimmed.contains('@') {
        true => "(not shown: it holds an @)".to_string(),
        false => format!("{:?}", trimmed.chars().take(200).collect::<String>()),
    };
    let Some((scheme, rest)) = trimmed.split_once("://") else {
        return refuse(format!("must be an https:// URL, got {}", shown()));
    };
    let authority = rest.split(['/', '?', '#', '\\']).next().unwrap_or("");
    // Not echoed: it would put the password in the message.
    if authority.contains('@') {
        return refuse(
            "must not carry a user name or password (the connection token is what \
             authenticates this POS)"
                .into(),
        );
    }
    let host = crate::reader::url_host(rest);
    if host.is_empty() || rest.contains(char::is_whitespace) {
        return refuse(format!("has no host, or a space: {}", shown()));
    }
    match scheme {
        "https" => Ok(trimmed.to_string()),
        "http" if crate::reader::is_loopback_host(host) => Ok(trimmed.to_string()),
        "http" => refuse(format!(
            "{} uses http:// to another device: use https:// (the connection token and the \
             card ciphertext would cross the network in the clear; http:// is allowed only \
             on loopback: 127.0.0.0/8, [::1], localhost)",
            shown()
        )),
        _ => refuse(format!("must be an https:// URL, got {}", shown())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts() {
        assert_eq!(amount(1.0), Ok(1));
        assert_eq!(amount(99_999_999.0), Ok(99_999_999));
        for bad in [0.0, -5.0, 12.5, f64::NAN, f64::INFINITY, 100_000_000.0] {
            assert_eq!(amount(bad).unwrap_err().code(), "invalid_amount", "{bad}");
        }
    }

    #[test]
    fn currencies() {
        assert_eq!(currency("usd").unwrap(), "usd");
        assert_eq!(currency("eur").unwrap(), "eur");
        // Current codes are known, withdrawn and non-currency ones are not.
        assert_eq!(currency("zwg").unwrap(), "zwg");
        assert_eq!(currency("xcg").unwrap(), "xcg");
        for bad in ["USD", "us", "usdd", "xyz", "", "u$d", "zwl", "xau", "bov"] {
            assert_eq!(
                currency(bad).unwrap_err().code(),
                "invalid_currency",
                "{bad}"
            );
        }
    }

    #[test]
    fn minor_units_follow_iso() {
        assert_eq!(minor_units("jpy"), 0);
        assert_eq!(minor_units("usd"), 2);
        assert_eq!(minor_units("bhd"), 3);
        assert_eq!(display_amount(1250, "usd"), "12.50 usd");
        assert_eq!(display_amount(1250, "jpy"), "1250 jpy");
        assert_eq!(display_amount(1250, "bhd"), "1.250 bhd");
        assert_eq!(display_amount(5, "eur"), "0.05 eur");
    }

    #[test]
    fn metadata_bounds() {
        let mut m = SortedMap::new();
        m.insert("order".to_string(), "42".to_string());
        assert!(metadata(&m).is_ok());
        m.insert("k".repeat(41), "v".into());
        assert_eq!(metadata(&m).unwrap_err().code(), "invalid_metadata");
        let many: SortedMap<String> = (0..51)
            .map(|i| (format!("k{i}"), "v".to_string()))
            .collect();
        assert!(metadata(&many).is_err());
        let long: SortedMap<String> = [("k".to_string(), "v".repeat(501))].into();
        assert!(metadata(&long).is_err());
    }

    #[test]
    fn backend_urls() {
        assert_eq!(
            backend_url("http://127.0.0.1:8788/").unwrap(),
            "http://127.0.0.1:8788"
        );
        assert_eq!(
            backend_url("https://pos.example.com/").unwrap(),
            "https://pos.example.com"
        );
        assert_eq!(
            backend_url("http://localhost:8788").unwrap(),
            "http://localhost:8788"
        );
        for bad in [
            "ftp://x",
            "https://",
            "HTTPS://x",
            "pos.example.com",
            "http://pos.example.com",
            "http://10.0.0.2:8788",
            "https://pos example.com",
        ] {
            assert_eq!(
                backend_url(bad).unwrap_err().code(),
                "invalid_argument",
                "{bad}"
            );
        }
        // Credentials in the URL: refused, and never repeated in the message.
        for with_password in [
            "https://user:s3cret@pos.example.com",
            "http://u:s3cret@127.0.0.1:1",
            "user:s3cret@pos.example.com",
            "https:/user:s3cret@pos.example.com",
        ] {
            let e = backend_url(with_password).unwrap_err();
            assert_eq!(e.code(), "invalid_argument");
            assert!(!e.to_string().contains("s3cret"), "{e}");
        }
    }
}
