//! WhatsApp's 24-hour customer service window, and the approved template that reaches a
//! customer outside it.

use std::collections::BTreeMap;
use std::time::Duration;

/// Free-form WhatsApp messages reach a customer only this long after their last message.
pub const WINDOW: Duration = Duration::from_secs(24 * 3600);

/// Whether a free-form message may be sent at `now` to a customer who last wrote at
/// `last_customer_message` (never: closed).
pub fn window_open(last_customer_message: Option<i64>, now: i64) -> bool {
    last_customer_message.is_some_and(|at| now - at < WINDOW.as_millis() as i64)
}

/// The values a template's variables may be filled with.
const PLACEHOLDERS: &[&str] = &["{customer_name}", "{guest_url}", "{appointment}"];

/// An approved WhatsApp template (`ICB_WHATSAPP_TEMPLATE`) and how its variables are filled
/// (`ICB_WHATSAPP_TEMPLATE_PARAMS`, e.g. `name={customer_name},link={guest_url}`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WhatsappTemplate {
    pub id: String,
    /// Variable name and its value, which may hold placeholders.
    params: Vec<(String, String)>,
}

impl WhatsappTemplate {
    pub fn parse(id: &str, params: Option<&str>) -> Result<Self, String> {
        let id = id.trim();
        if id.is_empty() {
            return Err("the template id is empty".into());
        }
        let mut parsed = Vec::new();
        for pair in params.unwrap_or_default().split(',').map(str::trim) {
            if pair.is_empty() {
                continue;
            }
            let (name, value) = pair
                .split_once('=')
                .ok_or_else(|| format!("{pair:?} is not `variable=value`"))?;
            let name = name.trim();
            if name.is_empty() || parsed.iter().any(|(known, _)| known == name) {
                return Err(format!("{pair:?}: each variable needs a name of its own"));
            }
            let mut rest = value.to_string();
            for placeholder in PLACEHOLDERS {
                rest = rest.replace(placeholder, "");
            }
            if rest.contains('{') || rest.contains('}') {
                return Err(format!(
                    "{pair:?}: the value may use {} only",
                    PLACEHOLDERS.join(" and ")
                ));
            }
            parsed.push((name.to_string(), value.trim().to_string()));
        }
        Ok(Self {
            id: id.to_string(),
            params: parsed,
        })
    }

    /// The variables filled for one customer. Without a name the customer is "there"
    /// ("Hello there"); without a meeting the link is left empty, and `{appointment}` (a
    /// booked consultation's time) is empty but in an invitation.
    pub fn parameters(
        &self,
        customer_name: Option<&str>,
        guest_url: Option<&str>,
        appointment: Option<&str>,
    ) -> BTreeMap<String, String> {
        self.params
            .iter()
            .map(|(name, value)| {
                let filled = value
                    .replace("{customer_name}", customer_name.unwrap_or("there"))
                    .replace("{guest_url}", guest_url.unwrap_or(""))
                    .replace("{appointment}", appointment.unwrap_or(""));
                (name.clone(), filled)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_is_24_hours_from_the_customers_last_message() {
        let hour = 3_600_000;
        assert!(window_open(Some(0), 24 * hour - 1));
        assert!(!window_open(Some(0), 24 * hour));
        assert!(!window_open(None, 0));
    }

    #[test]
    fn parameters_fill_placeholders() {
        let template =
            WhatsappTemplate::parse("tpl_1", Some("name={customer_name}, link={guest_url},x=hi"))
                .unwrap();
        let filled = template.parameters(Some("Ann"), Some("https://l.example/g"), None);
        assert_eq!(filled["name"], "Ann");
        assert_eq!(filled["link"], "https://l.example/g");
        assert_eq!(filled["x"], "hi");
        assert_eq!(template.parameters(None, None, None)["name"], "there");
    }

    #[test]
    fn bad_parameter_lists_are_named() {
        assert!(WhatsappTemplate::parse("t", Some("name"))
            .unwrap_err()
            .contains("variable=value"));
        assert!(WhatsappTemplate::parse("t", Some("a={phone}"))
            .unwrap_err()
            .contains("{customer_name} and {guest_url} and {appointment} only"));
        assert!(WhatsappTemplate::parse("t", Some("a=1,a=2")).is_err());
        assert!(WhatsappTemplate::parse(" ", None).is_err());
    }
}
