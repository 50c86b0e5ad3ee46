//! Text-message channels (issue #5): two messengers and SMS, and how long a
//! text may be on each. An SMS is billed per segment, so its length is
//! counted the way the network splits it: GSM-7 when every character is in
//! the GSM 03.38 alphabet (160 per single message, 153 per part of a
//! concatenated one; the extension characters take two), UCS-2 otherwise,
//! e.g. for Cyrillic (70, 67 per part; counted in UTF-16 units).

use serde::{Deserialize, Serialize};
use std::fmt;

/// A way to send a customer a text. The order here is the default
/// preference when costs tie.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    MessengerA,
    MessengerB,
    Sms,
}

impl Channel {
    pub const ALL: [Channel; 3] = [Channel::MessengerA, Channel::MessengerB, Channel::Sms];

    pub fn as_str(self) -> &'static str {
        match self {
            Channel::MessengerA => "messenger_a",
            Channel::MessengerB => "messenger_b",
            Channel::Sms => "sms",
        }
    }

    pub fn parse(s: &str) -> Option<Channel> {
        Channel::ALL.into_iter().find(|c| c.as_str() == s)
    }

    /// Segments the text is billed as: SMS splits, a messenger message is
    /// always one.
    pub fn segments(self, text: &str) -> u32 {
        match self {
            Channel::Sms => SmsLength::of(text).segments,
            Channel::MessengerA | Channel::MessengerB => 1,
        }
    }

    /// Whether `text` fits this channel; the error says why not.
    pub fn check_length(self, text: &str) -> Result<(), String> {
        match self {
            Channel::Sms => {
                let len = SmsLength::of(text);
                if len.segments > MAX_SMS_SEGMENTS {
                    return Err(format!(
                        "{} SMS segments ({} {} characters); at most {MAX_SMS_SEGMENTS} \
                         ({} characters in {})",
                        len.segments,
                        len.units,
                        len.encoding,
                        MAX_SMS_SEGMENTS * len.encoding.per_part(),
                        len.encoding
                    ));
                }
                Ok(())
            }
            Channel::MessengerA | Channel::MessengerB => {
                let n = text.chars().count();
                if n > MAX_MESSENGER_CHARS {
                    return Err(format!("{n} characters; at most {MAX_MESSENGER_CHARS} on {self}"));
                }
                Ok(())
            }
        }
    }
}

impl fmt::Display for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A longer SMS costs too much and arrives in pieces on some phones.
pub const MAX_SMS_SEGMENTS: u32 = 3;
/// Well under what the messengers accept (4096): a notification, not a letter.
pub const MAX_MESSENGER_CHARS: usize = 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmsEncoding {
    Gsm7,
    Ucs2,
}

impl SmsEncoding {
    /// Units in a single-segment message.
    pub fn single(self) -> u32 {
        match self {
            SmsEncoding::Gsm7 => 160,
            SmsEncoding::Ucs2 => 70,
        }
    }

    /// Units per part of a concatenated message (the rest is its header).
    pub fn per_part(self) -> u32 {
        match self {
            SmsEncoding::Gsm7 => 153,
            SmsEncoding::Ucs2 => 67,
        }
    }
}

impl fmt::Display for SmsEncoding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SmsEncoding::Gsm7 => "GSM-7",
            SmsEncoding::Ucs2 => "UCS-2",
        })
    }
}

/// How the network counts one SMS text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SmsLength {
    pub encoding: SmsEncoding,
    /// Septets (GSM-7) or UTF-16 units (UCS-2).
    pub units: u32,
    pub segments: u32,
}

/// The GSM 03.38 basic alphabet (one septet each), without the escape.
const GSM_BASIC: &str = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?\
    ¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà";
/// The extension table: escape + character, two septets each.
const GSM_EXTENSION: &str = "\u{c}^{}\\[~]|€";

impl SmsLength {
    pub fn of(text: &str) -> SmsLength {
        let septets: Option<u32> = text
            .chars()
            .map(|c| {
                if GSM_BASIC.contains(c) {
                    Some(1)
                } else if GSM_EXTENSION.contains(c) {
                    Some(2)
                } else {
                    None
                }
            })
            .sum();
        let (encoding, units) = match septets {
            Some(n) => (SmsEncoding::Gsm7, n),
            None => (SmsEncoding::Ucs2, text.encode_utf16().count() as u32),
        };
        let segments = if units <= encoding.single() { 1 } else { units.div_ceil(encoding.per_part()) };
        SmsLength { encoding, units, segments }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latin_fits_160_in_one_and_153_per_part_after() {
        let len = |n: usize| SmsLength::of(&"a".repeat(n));
        assert_eq!(len(0).segments, 1);
        assert_eq!((len(160).encoding, len(160).segments), (SmsEncoding::Gsm7, 1));
        assert_eq!(len(161).segments, 2);
        assert_eq!(len(306).segments, 2);
        assert_eq!(len(307).segments, 3);
        assert_eq!(len(459).segments, 3);
        assert_eq!(len(460).segments, 4);
    }

    #[test]
    fn cyrillic_fits_70_in_one_and_67_per_part_after() {
        let len = |n: usize| SmsLength::of(&"я".repeat(n));
        assert_eq!((len(70).encoding, len(70).units, len(70).segments), (SmsEncoding::Ucs2, 70, 1));
        assert_eq!(len(71).segments, 2);
        assert_eq!(len(134).segments, 2);
        assert_eq!(len(135).segments, 3);
        // One Cyrillic letter turns a whole Latin text into UCS-2.
        let mixed = format!("{}я", "a".repeat(70));
        assert_eq!((SmsLength::of(&mixed).encoding, SmsLength::of(&mixed).segments), (SmsEncoding::Ucs2, 2));
    }

    #[test]
    fn extension_characters_take_two_septets_and_emoji_two_units() {
        let euros = "€".repeat(80);
        assert_eq!(SmsLength::of(&euros), SmsLength { encoding: SmsEncoding::Gsm7, units: 160, segments: 1 });
        assert_eq!(SmsLength::of(&format!("{euros}a")).segments, 2);
        let emoji = "🙂".repeat(35);
        assert_eq!(SmsLength::of(&emoji), SmsLength { encoding: SmsEncoding::Ucs2, units: 70, segments: 1 });
        assert_eq!(
            SmsLength::of("Mañana à 12:00, Müller £5 ¿ok?").encoding,
            SmsEncoding::Gsm7,
            "accents of GSM-7"
        );
        assert_eq!(SmsLength::of("Zoë").encoding, SmsEncoding::Ucs2, "ë is not in GSM-7");
    }

    #[test]
    fn limits_per_channel() {
        assert_eq!(Channel::Sms.check_length(&"a".repeat(459)), Ok(()));
        let e = Channel::Sms.check_length(&"я".repeat(202)).expect_err("4 segments");
        assert!(e.contains("4 SMS segments") && e.contains("UCS-2"), "{e}");
        assert_eq!(Channel::MessengerA.check_length(&"я".repeat(1000)), Ok(()));
        assert!(Channel::MessengerB.check_length(&"a".repeat(1001)).is_err());
        assert_eq!(Channel::MessengerA.segments(&"я".repeat(500)), 1);
        assert_eq!(Channel::Sms.segments(&"я".repeat(100)), 2);
    }

    #[test]
    fn channels_read_and_write_their_names() {
        for c in Channel::ALL {
            assert_eq!(Channel::parse(c.as_str()), Some(c));
            assert_eq!(serde_json::to_string(&c).expect("json"), format!("\"{c}\""));
        }
        assert_eq!(Channel::parse("pigeon"), None);
    }
}
