//! The one fact `/diagnose` needs from a server certificate: when it expires.
//!
//! The probe client hands over the peer's leaf certificate as DER; reading `notAfter`
//! takes a walk through four nested DER elements, which is smaller than a dependency on
//! a full X.509 parser. The walk is strict about lengths and gives up (`None`) on
//! anything unexpected: a wrong expiry date is worse than none.

use chrono::{DateTime, NaiveDate, Utc};

/// One DER element: tag, contents, and what follows it.
fn element(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let count = usize::from(first & 0x7f);
        // Certificates are far below 2^32 bytes; longer length forms are not DER here.
        if count == 0 || count > 4 || rest.len() < count {
            return None;
        }
        let (bytes, rest) = rest.split_at(count);
        let len = bytes
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        (len, rest)
    };
    if rest.len() < len {
        return None;
    }
    let (content, rest) = rest.split_at(len);
    Some((tag, content, rest))
}

const SEQUENCE: u8 = 0x30;
const UTC_TIME: u8 = 0x17;
const GENERALIZED_TIME: u8 = 0x18;
/// `[0] EXPLICIT Version` at the start of a v3 `TBSCertificate`.
const VERSION_TAG: u8 = 0xa0;

/// The certificate's `notAfter` (RFC 5280 §4.1.2.5).
pub fn not_after(der: &[u8]) -> Option<DateTime<Utc>> {
    let (tag, certificate, _) = element(der)?;
    if tag != SEQUENCE {
        return None;
    }
    let (tag, tbs, _) = element(certificate)?;
    if tag != SEQUENCE {
        return None;
    }
    let mut rest = tbs;
    let (tag, _, after) = element(rest)?;
    if tag == VERSION_TAG {
        rest = after;
    }
    // serialNumber, signature, issuer.
    for _ in 0..3 {
        rest = element(rest)?.2;
    }
    let (tag, validity, _) = element(rest)?;
    if tag != SEQUENCE {
        return None;
    }
    let (_, _, after_not_before) = element(validity)?;
    let (tag, not_after, _) = element(after_not_before)?;
    parse_time(tag, std::str::from_utf8(not_after).ok()?)
}

/// `YYMMDDHHMMSSZ` (UTCTime, years 1950–2049) or `YYYYMMDDHHMMSSZ` (GeneralizedTime).
fn parse_time(tag: u8, text: &str) -> Option<DateTime<Utc>> {
    let digits = text.strip_suffix('Z')?;
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (year, rest) = match (tag, digits.len()) {
        (UTC_TIME, 12) => {
            let yy: i32 = digits[..2].parse().ok()?;
            (if yy >= 50 { 1900 + yy } else { 2000 + yy }, &digits[2..])
        }
        (GENERALIZED_TIME, 14) => (digits[..4].parse().ok()?, &digits[4..]),
        _ => return None,
    };
    let field = |i: usize| rest[i..i + 2].parse::<u32>().ok();
    NaiveDate::from_ymd_opt(year, field(0)?, field(2)?)?
        .and_hms_opt(field(4)?, field(6)?, field(8)?)
        .map(|t| t.and_utc())
}

/// Whole days from `now` until `expiry`; negative once expired.
pub fn days_until(expiry: DateTime<Utc>, now: DateTime<Utc>) -> i64 {
    (expiry - now).num_days()
}

#[cfg(test)]
mod tests {
    use base64::Engine;

    use super::*;

    /// Self-signed P-256 certificates made with `openssl req -x509`: one valid to
    /// 2026-12-28 (UTCTime), one to 2126 (GeneralizedTime, as RFC 5280 requires after 2049).
    const UTC_CERT: &str = "MIIBgjCCASegAwIBAgIUd24jL5eY7C6wqZ/T1oJcxAPE6pAwCgYIKoZIzj0EAwIwFjEUMBIGA1UEAwwLZXhhbXBsZS5jb20wHhcNMjYxMTI4MDUyMzA4WhcNMjYxMjI4MDUyMzA4WjAWMRQwEgYDVQQDDAtleGFtcGxlLmNvbTBZMBMGByqGSM49AgEGCCqGSM49AwEHA0IABJ5UAONXlvuOM1lSYJgKpHj+u3V8x7KZ+v18IIP7jUZKURsAv0sR5NLl/RI9WBf5switOODce7GsFojsT5rV3BOjUzBRMB0GA1UdDgQWBBR3M6IuPFzKCj02HPwxZmmFW0hlcjAfBgNVHSMEGDAWgBR3M6IuPFzKCj02HPwxZmmFW0hlcjAPBgNVHRMBAf8EBTADAQH/MAoGCCqGSM49BAMCA0kAMEYCIQD/uxTIhf81hWjAEGxk0kF5EBOa7k6lqc6298z+rpE5twIhAO6nLGGPZ/iYykSwmcivaJlxyGWcYKeYLxijAfoQGGUR";
    const GENERALIZED_CERT: &str = "MIIBhDCCASmgAwIBAgIUMK5Wj5EzuWD5pfzouiTDTH9yrVkwCgYIKoZIzj0EAwIwFjEUMBIGA1UEAwwLZmFyLmV4YW1wbGUwIBcNMjYxMTI4MDUyMzA4WhgPMjEyNjExMDQwNTIzMDhaMBYxFDASBgNVBAMMC2Zhci5leGFtcGxlMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEQJx5ZijLWEq03R3ImwNamV8N+JQJdU7ztR3/T054S22H02yOtYS1vyRwfPVGdbN5SO8ZwdjdFUTFBcJxO9vP0aNTMFEwHQYDVR0OBBYEFGXTX0yKMqQ7vjZ4d0Fz04U6qTDpMB8GA1UdIwQYMBaAFGXTX0yKMqQ7vjZ4d0Fz04U6qTDpMA8GA1UdEwEB/wQFMAMBAf8wCgYIKoZIzj0EAwIDSQAwRgIhAJkUEMLEi1upJa0qmrF/JWY+xJLrsfqSXJRHv3C+S/WkAiEAh168+ji4uGv21HiXA85zZwI+m2eR0xt6hYSLSX7sONI=";

    fn der(b64: &str) -> Vec<u8> {
        base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap()
    }

    #[test]
    fn reads_not_after_in_both_time_forms() {
        let expiry = not_after(&der(UTC_CERT)).unwrap();
        assert_eq!(expiry.to_rfc3339(), "2026-12-28T05:23:08+00:00");
        let expiry = not_after(&der(GENERALIZED_CERT)).unwrap();
        assert_eq!(expiry.to_rfc3339(), "2126-11-04T05:23:08+00:00");
    }

    #[test]
    fn garbage_and_truncation_give_none() {
        assert_eq!(not_after(b""), None);
        assert_eq!(not_after(b"not a certificate"), None);
        let full = der(UTC_CERT);
        for cut in [1, 10, 60, 150] {
            assert_eq!(not_after(&full[..cut]), None, "cut at {cut}");
        }
        assert_eq!(parse_time(UTC_TIME, "2612280523Z"), None);
        assert_eq!(parse_time(UTC_TIME, "261328052308Z"), None);
        assert_eq!(
            parse_time(UTC_TIME, "991231235959Z").unwrap().to_rfc3339(),
            "1999-12-31T23:59:59+00:00"
        );
    }

    #[test]
    fn days_until_counts_whole_days() {
        let expiry = not_after(&der(UTC_CERT)).unwrap();
        let now = expiry - chrono::Duration::hours(24 * 12 + 5);
        assert_eq!(days_until(expiry, now), 12);
        assert_eq!(days_until(expiry, expiry + chrono::Duration::days(2)), -2);
    }
}
