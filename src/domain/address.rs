//! Who writes and to whom: a customer's address (a phone number or WhatsApp id, masked
//! wherever it is shown) and the business address they wrote to.

use std::fmt;

use super::Channel;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    #[error("is empty")]
    Empty,
    #[error("is not a phone number in international format (7 to 15 digits, e.g. +14155550123)")]
    NotAPhoneNumber,
    #[error("is not a WhatsApp id (the customer's number in international format, digits only)")]
    NotAWhatsappId,
    #[error("is longer than {0} characters")]
    TooLong(usize),
}

/// The customer's address on their channel: an E.164 number (`+14155550123`) for SMS, a
/// WhatsApp id (the same digits without `+`) for WhatsApp.
///
/// `Display` and `Debug` mask it (`+1415•••0123`) so it can go into logs; the full value is
/// only available through [`CustomerAddress::as_str`], for storage and upstream requests.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct CustomerAddress(String);

impl CustomerAddress {
    pub fn parse(channel: Channel, raw: &str) -> Result<Self, AddressError> {
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return Err(AddressError::Empty);
        }
        // People (and flow authors) write numbers with spacing and punctuation.
        let without_plus = trimmed.strip_prefix('+').unwrap_or(trimmed);
        let digits: String = without_plus
            .chars()
            .filter(|c| !matches!(c, ' ' | '-' | '(' | ')' | '.'))
            .collect();
        let valid = (7..=15).contains(&digits.len())
            && digits.bytes().all(|b| b.is_ascii_digit())
            && !digits.starts_with('0');
        match (channel, valid) {
            (Channel::Sms, true) => Ok(Self(format!("+{digits}"))),
            (Channel::Whatsapp, true) => Ok(Self(digits)),
            (Channel::Sms, false) => Err(AddressError::NotAPhoneNumber),
            (Channel::Whatsapp, false) => Err(AddressError::NotAWhatsappId),
        }
    }

    /// Rebuilds an address read back from the database (already normalised).
    pub fn from_stored(stored: String) -> Self {
        Self(stored)
    }

    /// The full address. Never log this.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The number's digits, without `+`.
    pub fn digits(&self) -> &str {
        self.0.strip_prefix('+').unwrap_or(&self.0)
    }

    /// `+1415•••0123`: the country and area prefix and the last four digits.
    pub fn masked(&self) -> String {
        format!("+{}", mask_digits(self.digits()))
    }
}

/// `1415•••0123`: a number's digits (ASCII), masked as [`CustomerAddress::masked`] shows them.
pub fn mask_digits(digits: &str) -> String {
    let shown_prefix = digits.len().saturating_sub(7).min(4);
    let last_four = &digits[digits.len().saturating_sub(4)..];
    format!("{}•••{}", &digits[..shown_prefix], last_four)
}

impl fmt::Display for CustomerAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.masked())
    }
}

impl fmt::Debug for CustomerAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CustomerAddress({})", self.masked())
    }
}

/// The business side of a conversation: the SMS number or short code the customer wrote to,
/// or the WhatsApp app id. Empty when the sender did not say (a flow body without `to`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct BusinessAddress(String);

impl BusinessAddress {
    const MAX_LEN: usize = 128;

    pub fn parse(raw: &str) -> Result<Self, AddressError> {
        let trimmed = raw.trim();
        if trimmed.chars().count() > Self::MAX_LEN {
            return Err(AddressError::TooLong(Self::MAX_LEN));
        }
        Ok(Self(trimmed.to_string()))
    }

    pub fn from_stored(stored: String) -> Self {
        Self(stored)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sms_numbers_are_normalised_to_e164() {
        for raw in [
            "14155550123",
            "+14155550123",
            " +1 (415) 555-0123 ",
            "1.415.555.0123",
        ] {
            let address = CustomerAddress::parse(Channel::Sms, raw).unwrap();
            assert_eq!(address.as_str(), "+14155550123", "{raw}");
        }
    }

    #[test]
    fn whatsapp_ids_are_digits_only() {
        let address = CustomerAddress::parse(Channel::Whatsapp, "+14155550142").unwrap();
        assert_eq!(address.as_str(), "14155550142");
    }

    #[test]
    fn invalid_addresses_are_refused() {
        for raw in [
            "",
            "hello",
            "+123",
            "0014155550123",
            "1415555012345678",
            "$(n2.sms.senderNumber)",
        ] {
            assert!(CustomerAddress::parse(Channel::Sms, raw).is_err(), "{raw}");
        }
        assert_eq!(
            CustomerAddress::parse(Channel::Whatsapp, "alice").unwrap_err(),
            AddressError::NotAWhatsappId
        );
    }

    #[test]
    fn display_and_debug_are_masked() {
        let address = CustomerAddress::parse(Channel::Sms, "+14155550123").unwrap();
        assert_eq!(address.to_string(), "+1415•••0123");
        assert_eq!(format!("{address:?}"), "CustomerAddress(+1415•••0123)");
        let short = CustomerAddress::parse(Channel::Sms, "+4961234567").unwrap();
        assert_eq!(short.to_string(), "+496•••4567");
        let shortest = CustomerAddress::parse(Channel::Sms, "2345678").unwrap();
        assert_eq!(shortest.to_string(), "+•••5678");
    }
}
