//! The nine output channels of the UCI HAR pipeline and sets of them.

use core::fmt;

/// One output channel, in the order of UCI HAR's `Inertial Signals` folder
/// (`total_acc_{x,y,z}`, `body_acc_{x,y,z}`, `body_gyro_{x,y,z}`).
///
/// The discriminant is the channel's bit in [`ChannelSet`] and its row in a window of
/// [`ChannelSet::ALL`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum Channel {
    TotalAccX = 0,
    TotalAccY = 1,
    TotalAccZ = 2,
    BodyAccX = 3,
    BodyAccY = 4,
    BodyAccZ = 5,
    BodyGyroX = 6,
    BodyGyroY = 7,
    BodyGyroZ = 8,
}

impl Channel {
    /// All channels, in order.
    pub const ALL: [Channel; 9] = [
        Channel::TotalAccX,
        Channel::TotalAccY,
        Channel::TotalAccZ,
        Channel::BodyAccX,
        Channel::BodyAccY,
        Channel::BodyAccZ,
        Channel::BodyGyroX,
        Channel::BodyGyroY,
        Channel::BodyGyroZ,
    ];

    /// Position in [`Channel::ALL`] (0..9).
    pub const fn index(self) -> usize {
        self as usize
    }

    /// Inverse of [`Channel::index`].
    pub const fn from_index(index: usize) -> Option<Channel> {
        if index < Channel::ALL.len() {
            Some(Channel::ALL[index])
        } else {
            None
        }
    }

    /// The UCI HAR file stem of this channel, e.g. `"body_gyro_x"`.
    pub const fn name(self) -> &'static str {
        match self {
            Channel::TotalAccX => "total_acc_x",
            Channel::TotalAccY => "total_acc_y",
            Channel::TotalAccZ => "total_acc_z",
            Channel::BodyAccX => "body_acc_x",
            Channel::BodyAccY => "body_acc_y",
            Channel::BodyAccZ => "body_acc_z",
            Channel::BodyGyroX => "body_gyro_x",
            Channel::BodyGyroY => "body_gyro_y",
            Channel::BodyGyroZ => "body_gyro_z",
        }
    }

    /// Physical unit of the channel's values.
    pub const fn unit(self) -> &'static str {
        match self {
            Channel::BodyGyroX | Channel::BodyGyroY | Channel::BodyGyroZ => "rad/s",
            _ => "g",
        }
    }

    const fn bit(self) -> u16 {
        1 << (self as u16)
    }
}

impl fmt::Display for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A non-empty set of [`Channel`]s, stored as a bitmask (bit *i* = `Channel::ALL[i]`).
///
/// A window holds the selected channels in [`Channel`] order, whatever order they were
/// named in. Serialised as names (`"total_acc,body_acc"`) in human-readable formats
/// (JSON, TOML) and as the `u16` bitmask otherwise (postcard); both forms are accepted
/// when reading human-readable formats.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ChannelSet(u16);

/// Named groups accepted by [`ChannelSet::from_names`], in the order used for printing.
const GROUPS: [(&str, ChannelSet); 3] = [
    ("total_acc", ChannelSet::TOTAL_ACC),
    ("body_acc", ChannelSet::BODY_ACC),
    ("body_gyro", ChannelSet::BODY_GYRO),
];

impl ChannelSet {
    /// All nine channels (the UCI HAR `Inertial Signals`).
    pub const ALL: ChannelSet = ChannelSet(0x1ff);
    /// Total and body acceleration: for boards without a gyroscope.
    pub const ACC_ONLY: ChannelSet = ChannelSet(0x03f);
    /// Total acceleration x, y, z only.
    pub const TOTAL_ACC: ChannelSet = ChannelSet(0x007);
    /// Body acceleration x, y, z only.
    pub const BODY_ACC: ChannelSet = ChannelSet(0x038);
    /// Body angular velocity x, y, z only.
    pub const BODY_GYRO: ChannelSet = ChannelSet(0x1c0);

    /// The bitmask, for serialisation (bit *i* = `Channel::ALL[i]`).
    pub const fn bits(self) -> u16 {
        self.0
    }

    /// Inverse of [`ChannelSet::bits`]; `None` for an empty set or bits above bit 8.
    pub const fn from_bits(bits: u16) -> Option<ChannelSet> {
        if bits == 0 || bits & !Self::ALL.0 != 0 {
            None
        } else {
            Some(ChannelSet(bits))
        }
    }

    /// The set holding exactly `channel`.
    pub const fn single(channel: Channel) -> ChannelSet {
        ChannelSet(channel.bit())
    }

    /// Union of two sets.
    pub const fn union(self, other: ChannelSet) -> ChannelSet {
        ChannelSet(self.0 | other.0)
    }

    /// Number of channels (1..=9).
    pub const fn len(self) -> usize {
        self.0.count_ones() as usize
    }

    /// Always false: a `ChannelSet` cannot be empty (kept for clippy's `len_without_is_empty`).
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub const fn contains(self, channel: Channel) -> bool {
        self.0 & channel.bit() != 0
    }

    /// Row of `channel` in a window of this set, if selected.
    pub const fn position(self, channel: Channel) -> Option<usize> {
        if self.contains(channel) {
            Some((self.0 & (channel.bit() - 1)).count_ones() as usize)
        } else {
            None
        }
    }

    /// True if any accelerometer-derived channel (total or body acc) is selected.
    pub const fn needs_acc(self) -> bool {
        self.0 & Self::ACC_ONLY.0 != 0
    }

    /// True if any gyroscope channel is selected.
    pub const fn needs_gyro(self) -> bool {
        self.0 & Self::BODY_GYRO.0 != 0
    }

    /// The selected channels in [`Channel`] order.
    pub fn iter(self) -> impl Iterator<Item = Channel> + Clone {
        Channel::ALL.into_iter().filter(move |c| self.contains(*c))
    }

    /// Parses a comma-separated list of names (case-insensitive, spaces ignored):
    /// groups `all`, `acc` (= total + body acc), `gyro` (= body_gyro), `total_acc`,
    /// `body_acc`, `body_gyro`, or single channels such as `body_acc_x`.
    pub fn from_names(names: &str) -> Result<ChannelSet, ParseChannelSetError> {
        let mut bits = 0u16;
        for token in names.split(',') {
            let token = token.trim();
            let set = Self::parse_token(token).ok_or_else(|| ParseChannelSetError::new(token))?;
            bits |= set.0;
        }
        Ok(ChannelSet(bits))
    }

    fn parse_token(token: &str) -> Option<ChannelSet> {
        let extra: [(&str, ChannelSet); 3] = [
            ("all", ChannelSet::ALL),
            ("acc", ChannelSet::ACC_ONLY),
            ("gyro", ChannelSet::BODY_GYRO),
        ];
        GROUPS
            .iter()
            .chain(extra.iter())
            .find(|(name, _)| name.eq_ignore_ascii_case(token))
            .map(|(_, set)| *set)
            .or_else(|| {
                Channel::ALL
                    .into_iter()
                    .find(|c| c.name().eq_ignore_ascii_case(token))
                    .map(ChannelSet::single)
            })
    }
}

impl fmt::Display for ChannelSet {
    /// Canonical names: whole groups where possible, then single channels, e.g.
    /// `total_acc,body_gyro_z`. [`ChannelSet::from_names`] parses it back.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut rest = self.0;
        let mut first = true;
        let mut sep = |f: &mut fmt::Formatter<'_>| {
            let s = if first { "" } else { "," };
            first = false;
            f.write_str(s)
        };
        for (name, set) in GROUPS {
            if rest & set.0 == set.0 {
                sep(f)?;
                f.write_str(name)?;
                rest &= !set.0;
            }
        }
        for channel in Channel::ALL {
            if rest & channel.bit() != 0 {
                sep(f)?;
                f.write_str(channel.name())?;
            }
        }
        Ok(())
    }
}

impl fmt::Debug for ChannelSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ChannelSet({self})")
    }
}

impl From<ChannelSet> for u16 {
    fn from(set: ChannelSet) -> u16 {
        set.0
    }
}

impl TryFrom<u16> for ChannelSet {
    type Error = ParseChannelSetError;
    fn try_from(bits: u16) -> Result<ChannelSet, ParseChannelSetError> {
        ChannelSet::from_bits(bits).ok_or(ParseChannelSetError::Bits(bits))
    }
}

/// Longest token kept in a [`ParseChannelSetError`]; longer ones are cut.
const MAX_TOKEN_LEN: usize = 32;

/// A channel list that names no known channel or group, or an invalid bitmask.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ParseChannelSetError {
    /// The offending token (cut to 32 bytes); empty for an empty list entry.
    UnknownName(heapless::String<MAX_TOKEN_LEN>),
    /// A bitmask that is zero or has bits above bit 8.
    Bits(u16),
}

impl ParseChannelSetError {
    fn new(token: &str) -> Self {
        let mut kept = heapless::String::new();
        for ch in token.chars() {
            if kept.push(ch).is_err() {
                break;
            }
        }
        ParseChannelSetError::UnknownName(kept)
    }
}

impl fmt::Display for ParseChannelSetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParseChannelSetError::UnknownName(token) => write!(
                f,
                "unknown channel name `{token}`: expected a comma-separated list of all, acc, \
                 gyro, total_acc, body_acc, body_gyro or a single channel such as body_acc_x"
            ),
            ParseChannelSetError::Bits(bits) => write!(
                f,
                "invalid channel bitmask {bits:#x}: must be non-zero and within {:#x}",
                ChannelSet::ALL.0
            ),
        }
    }
}

impl core::error::Error for ParseChannelSetError {}

impl serde::Serialize for ChannelSet {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            // Longest canonical form is 9 single names joined by commas (< 128 bytes).
            let mut text = heapless::String::<128>::new();
            fmt::Write::write_fmt(&mut text, format_args!("{self}"))
                .map_err(|_| serde::ser::Error::custom("channel names longer than 128 bytes"))?;
            serializer.serialize_str(&text)
        } else {
            serializer.serialize_u16(self.0)
        }
    }
}

impl<'de> serde::Deserialize<'de> for ChannelSet {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<ChannelSet, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = ChannelSet;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("channel names such as \"total_acc,body_acc\" or a u16 bitmask")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<ChannelSet, E> {
                ChannelSet::from_names(v).map_err(E::custom)
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<ChannelSet, E> {
                u16::try_from(v)
                    .ok()
                    .and_then(ChannelSet::from_bits)
                    .ok_or_else(|| E::custom(ParseChannelSetError::Bits(v as u16)))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<ChannelSet, E> {
                self.visit_u64(u64::try_from(v).unwrap_or(0))
            }
        }
        if deserializer.is_human_readable() {
            deserializer.deserialize_any(Visitor)
        } else {
            deserializer.deserialize_u16(Visitor)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_follow_channel_order() {
        let set = ChannelSet::from_names("body_gyro_y, total_acc_z,body_acc").unwrap();
        let got: heapless::Vec<Channel, 9> = set.iter().collect();
        assert_eq!(
            got.as_slice(),
            &[
                Channel::TotalAccZ,
                Channel::BodyAccX,
                Channel::BodyAccY,
                Channel::BodyAccZ,
                Channel::BodyGyroY
            ]
        );
        assert_eq!(set.len(), 5);
        assert_eq!(set.position(Channel::TotalAccZ), Some(0));
        assert_eq!(set.position(Channel::BodyGyroY), Some(4));
        assert_eq!(set.position(Channel::TotalAccX), None);
        for (row, channel) in ChannelSet::ALL.iter().enumerate() {
            assert_eq!(ChannelSet::ALL.position(channel), Some(row));
            assert_eq!(channel.index(), row);
            assert_eq!(Channel::from_index(row), Some(channel));
        }
    }

    #[test]
    fn named_groups() {
        assert_eq!(ChannelSet::from_names("all").unwrap(), ChannelSet::ALL);
        assert_eq!(ChannelSet::from_names("ACC").unwrap(), ChannelSet::ACC_ONLY);
        assert_eq!(
            ChannelSet::from_names("total_acc,body_acc").unwrap(),
            ChannelSet::ACC_ONLY
        );
        assert_eq!(
            ChannelSet::from_names("total_acc,body_gyro")
                .unwrap()
                .bits(),
            0x1c7
        );
        assert_eq!(ChannelSet::ACC_ONLY.len(), 6);
        assert!(ChannelSet::ACC_ONLY.needs_acc() && !ChannelSet::ACC_ONLY.needs_gyro());
        assert!(!ChannelSet::BODY_GYRO.needs_acc() && ChannelSet::BODY_GYRO.needs_gyro());
    }

    #[test]
    fn bad_names_and_bits_are_errors() {
        match ChannelSet::from_names("total_acc,magnetometer") {
            Err(ParseChannelSetError::UnknownName(t)) => assert_eq!(t.as_str(), "magnetometer"),
            other => panic!("expected UnknownName, got {other:?}"),
        }
        assert!(ChannelSet::from_names("").is_err());
        assert!(ChannelSet::from_names("total_acc,,body_acc").is_err());
        match ChannelSet::from_names("a_token_that_is_much_longer_than_thirty_two_bytes") {
            Err(ParseChannelSetError::UnknownName(t)) => assert_eq!(t.len(), MAX_TOKEN_LEN),
            other => panic!("expected UnknownName, got {other:?}"),
        }
        assert_eq!(ChannelSet::from_bits(0), None);
        assert_eq!(ChannelSet::from_bits(0x200), None);
        assert_eq!(ChannelSet::from_bits(0x1ff), Some(ChannelSet::ALL));
    }

    #[test]
    fn display_round_trips_for_every_set() {
        for bits in 1..=0x1ffu16 {
            let set = ChannelSet::from_bits(bits).unwrap();
            let mut text = heapless::String::<128>::new();
            fmt::Write::write_fmt(&mut text, format_args!("{set}")).unwrap();
            assert_eq!(ChannelSet::from_names(&text), Ok(set), "{text}");
        }
        let mut text = heapless::String::<128>::new();
        fmt::Write::write_fmt(&mut text, format_args!("{}", ChannelSet::ALL)).unwrap();
        assert_eq!(text.as_str(), "total_acc,body_acc,body_gyro");
    }

    #[test]
    fn postcard_round_trip_uses_bits() {
        let mut buf = [0u8; 8];
        let used = postcard::to_slice(&ChannelSet::ACC_ONLY, &mut buf).unwrap();
        assert_eq!(
            postcard::from_bytes::<ChannelSet>(used),
            Ok(ChannelSet::ACC_ONLY)
        );
        let bad = postcard::to_slice(&0u16, &mut buf).unwrap();
        assert!(postcard::from_bytes::<ChannelSet>(bad).is_err());
    }
}
