//! ISO 4217 currencies in use and the decimals of their minor unit, as one compact table:
//! what the SDK needs of the `iso_currency` tables (kept as a dev-dependency: a test checks
//! this table against them) for a few hundred bytes instead of tens of kilobytes of wasm.

/// Every ISO 4217 code in use (no fund, metal or superseded code), lowercase, each followed
/// by its minor unit's decimals, sorted: `aed2afn2…`.
const TABLE: &str = "aed2afn2all2amd2aoa2ars2aud2awg2azn2bam2bbd2bdt2bhd3bif0bmd2bnd2bob2brl2bsd2btn2bwp2byn2bzd2cad2cdf2chf2clp0cny2cop2crc2cup2cve2czk2djf0dkk2dop2dzd2egp2ern2etb2eur2fjd2fkp2gbp2gel2ghs2gip2gmd2gnf0gtq2gyd2hkd2hnl2htg2huf2idr2ils2inr2iqd3irr2isk0jmd2jod3jpy0kes2kgs2khr2kmf0kpw2krw0kwd3kyd2kzt2lak2lbp2lkr2lrd2lsl2lyd3mad2mdl2mga2mkd2mmk2mnt2mop2mru2mur2mvr2mwk2mxn2myr2mzn2nad2ngn2nio2nok2npr2nzd2omr3pab2pen2pgk2php2pkr2pln2pyg0qar2ron2rsd2rub2rwf0sar2sbd2scr2sdg2sek2sgd2shp2sle2sos2srd2ssp2stn2svc2syp2szl2thb2tjs2tmt2tnd3top2try2ttd2twd2tzs2uah2ugx0usd2uyu2uzs2ved2vnd0vuv0wst2xad2xaf0xcd2xcg2xof0xpf0yer2zar2zmw2zwg2";

/// The decimals of `code`'s minor unit (lowercase ISO 4217), `None` if it is not a
/// currency in use.
pub fn minor_units(code: &str) -> Option<u32> {
    if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_lowercase()) {
        return None;
    }
    let table = TABLE.as_bytes();
    let (mut low, mut high) = (0, table.len() / 4);
    while low < high {
        let mid = (low + high) / 2;
        let entry = &table[mid * 4..mid * 4 + 4];
        match entry[..3].cmp(code.as_bytes()) {
            std::cmp::Ordering::Less => low = mid + 1,
            std::cmp::Ordering::Greater => high = mid,
            std::cmp::Ordering::Equal => return Some(u32::from(entry[3] - b'0')),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use iso_currency::Currency;

    #[test]
    fn the_table_is_iso_currency_s_currencies_in_use() {
        let mut checked = 0;
        for a in b'a'..=b'z' {
            for b in b'a'..=b'z' {
                for c in b'a'..=b'z' {
                    let code = String::from_utf8(vec![a, b, c]).unwrap();
                    let expected = Currency::from_code(&code.to_ascii_uppercase())
                        .filter(|c| c.is_superseded().is_none() && !c.is_fund())
                        .and_then(Currency::exponent)
                        .map(u32::from);
                    assert_eq!(minor_units(&code), expected, "{code}");
                    checked += usize::from(expected.is_some());
                }
            }
        }
        assert_eq!(checked, TABLE.len() / 4);
        assert_eq!(
            (minor_units("jpy"), minor_units("usd"), minor_units("bhd")),
            (Some(0), Some(2), Some(3))
        );
        assert_eq!(minor_units("USD"), None, "lowercase only");
        assert_eq!(minor_units("us"), None);
        assert_eq!(minor_units("é1"), None);
    }
}
