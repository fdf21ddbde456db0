//! Identifiers and timestamps shared by every layer.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use uuid::Uuid;

/// A new UUID v7: the Unix time in milliseconds, then a 42-bit counter that starts at a random
/// value each millisecond and counts up within it (so ids of one process sort in creation
/// order), then 32 random bits. The randomness comes from a generator seeded once per process
/// (from the system, through `Uuid::now_v7`), not from a system call per id: ids are made
/// several times per record and that call was a measurable share of small writes.
pub(crate) fn fresh_v7() -> Uuid {
    struct Gen {
        seed: u64,
        calls: u64,
        millis: u64,
        counter: u64,
    }
    static GEN: parking_lot::Mutex<Option<Gen>> = parking_lot::Mutex::new(None);
    const COUNTER_BITS: u32 = 42;

    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    let mut guard = GEN.lock();
    let g = guard.get_or_insert_with(|| {
        let b = Uuid::now_v7().as_u128();
        Gen {
            seed: (b as u64) ^ ((b >> 64) as u64).rotate_left(29),
            calls: 0,
            millis: 0,
            counter: 0,
        }
    });
    g.calls += 1;
    let random = splitmix64(
        g.seed
            .wrapping_add(g.calls.wrapping_mul(0x9e37_79b9_7f4a_7c15)),
    );
    if now > g.millis {
        // A new millisecond: the counter restarts at a random value below half its range, so
        // it cannot run out within a millisecond in practice.
        g.millis = now;
        g.counter = splitmix64(random) >> (64 - COUNTER_BITS + 1);
    } else if g.counter + 1 < 1 << COUNTER_BITS {
        // The same millisecond, or the clock went back: count on from the last id.
        g.counter += 1;
    } else {
        g.millis += 1;
        g.counter = splitmix64(random) >> (64 - COUNTER_BITS + 1);
    }
    // The builder overwrites the top 4 bits of byte 0 (version) and the top 2 of byte 2
    // (variant): the counter's 42 bits go around them, most significant first.
    let c = g.counter;
    let mut bytes = [0u8; 10];
    bytes[0] = ((c >> 38) & 0x0f) as u8;
    bytes[1] = (c >> 30) as u8;
    bytes[2] = ((c >> 24) & 0x3f) as u8;
    bytes[3] = (c >> 16) as u8;
    bytes[4] = (c >> 8) as u8;
    bytes[5] = c as u8;
    bytes[6..].copy_from_slice(&(random as u32).to_be_bytes());
    uuid::Builder::from_unix_timestamp_millis(g.millis, &bytes).into_uuid()
}

fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        pub struct $name(pub Uuid);

        impl $name {
            /// A fresh, time-ordered (UUID v7) id.
            pub fn new() -> Self {
                $name(fresh_v7())
            }
            /// The id as a UUID.
            pub fn uuid(&self) -> Uuid {
                self.0
            }
            #[allow(dead_code)]
            pub(crate) fn raw(&self) -> u128 {
                self.0.as_u128()
            }
            #[allow(dead_code)]
            pub(crate) fn from_raw(v: u128) -> Self {
                $name(Uuid::from_u128(v))
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.hyphenated().fmt(f)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.0.hyphenated())
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map($name)
            }
        }

        impl From<Uuid> for $name {
            fn from(u: Uuid) -> Self {
                $name(u)
            }
        }
    };
}

id_type!(
    /// Identifies a bucket.
    BucketId
);
id_type!(
    /// Identifies one object version (Invenio's `ObjectVersion.version_id`, a UUID).
    VersionId
);
id_type!(
    /// Identifies a file instance (the stored bytes, shared by versions).
    FileId
);
id_type!(
    /// Identifies a record.
    RecordId
);
id_type!(
    /// Identifies a multipart upload session.
    UploadId
);

/// A UTC instant with microsecond precision, stored as microseconds since the Unix epoch.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default)]
pub struct Timestamp(pub i64);

impl Timestamp {
    /// The current time.
    pub fn now() -> Self {
        let d = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        Timestamp(i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
    }

    /// Microseconds since 1970-01-01T00:00:00Z.
    pub fn as_micros(&self) -> i64 {
        self.0
    }

    /// This instant moved back by `d` (saturating).
    pub fn minus(&self, d: std::time::Duration) -> Self {
        let us = i64::try_from(d.as_micros()).unwrap_or(i64::MAX);
        Timestamp(self.0.saturating_sub(us))
    }

    /// ISO 8601 / RFC 3339 text with the UTC offset, as Invenio serializes datetimes:
    /// `2019-05-16T13:07:21.595398+00:00`.
    pub fn to_rfc3339(&self) -> String {
        let secs = self.0.div_euclid(1_000_000);
        let micros = self.0.rem_euclid(1_000_000);
        let days = secs.div_euclid(86_400);
        let sod = secs.rem_euclid(86_400);
        let (y, m, d) = civil_from_days(days);
        format!(
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{micros:06}+00:00",
            sod / 3600,
            (sod % 3600) / 60,
            sod % 60
        )
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

/// Days since the epoch to a proleptic Gregorian (year, month, day); the well-known
/// era-based conversion, valid for every i64 day count we can produce from microseconds.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    #[test]
    fn fresh_ids_are_version_7_and_strictly_increasing() {
        let ids: Vec<uuid::Uuid> = (0..20_000).map(|_| super::fresh_v7()).collect();
        for w in ids.windows(2) {
            assert!(w[0] < w[1], "{} then {}", w[0], w[1]);
        }
        assert!(
            ids.iter()
                .all(|u| u.get_version_num() == 7 && u.get_variant() == uuid::Variant::RFC4122)
        );
        let since_epoch = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64;
        let (secs, _) = ids[0].get_timestamp().unwrap().to_unix();
        assert!(secs.abs_diff(since_epoch / 1000) < 60);
    }

    use super::*;

    #[test]
    fn rfc3339_formats_known_instants() {
        assert_eq!(
            Timestamp(0).to_rfc3339(),
            "1970-01-01T00:00:00.000000+00:00"
        );
        assert_eq!(
            Timestamp(1_558_012_041_595_398).to_rfc3339(),
            "2019-05-16T13:07:21.595398+00:00"
        );
        assert_eq!(
            Timestamp(-1).to_rfc3339(),
            "1969-12-31T23:59:59.999999+00:00"
        );
    }
}
