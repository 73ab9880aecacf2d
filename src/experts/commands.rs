//! The experts' commands: what an expert can say to the bot (`close`, `new link`, `take`,
//! `release`, `transfer`, `add guest`, or a reply for the customer), read from their
//! message. What each does is in `actions`.

/// What an expert can say to the bot.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Command {
    Help,
    List,
    Close,
    NewLink,
    Take,
    Release,
    /// `transfer <desk>`.
    Transfer(String),
    /// `add guest`, maybe with a number to send the link to.
    AddGuest(Option<String>),
    /// Anything else: in a thread, a reply for the customer.
    Text,
}

impl Command {
    pub(super) fn parse(text: &str) -> Self {
        let normalised = text
            .trim()
            .trim_end_matches(['.', '!', '?'])
            .to_lowercase()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        match normalised.as_str() {
            "help" | "" => Command::Help,
            "list" => Command::List,
            "close" => Command::Close,
            "new link" | "newlink" | "new-link" => Command::NewLink,
            "take" => Command::Take,
            "release" => Command::Release,
            "add guest" | "add-guest" => Command::AddGuest(None),
            other => match (
                other.strip_prefix("transfer "),
                other.strip_prefix("add guest "),
            ) {
                (Some(desk), _) if !desk.contains(' ') => Command::Transfer(desk.to_string()),
                // A number, as people write them: `+1 415 555 0123`.
                (_, Some(number))
                    if number
                        .chars()
                        .all(|c| c.is_ascii_digit() || " +-().".contains(c)) =>
                {
                    Command::AddGuest(Some(number.to_string()))
                }
                _ => Command::Text,
            },
        }
    }
}

/// Where the bot answers: the room, and the thread when there is one.
pub(super) struct Place {
    pub(super) room_id: String,
    pub(super) parent_id: Option<String>,
}

/// In a space, a message to the bot starts with its mention: the bot's name (or first
/// name) is not part of what the expert said.
pub(super) fn without_mention<'a>(text: &'a str, bot_name: &str) -> &'a str {
    let text = text.trim();
    let first_name = bot_name.split_whitespace().next().unwrap_or_default();
    for name in [bot_name, first_name] {
        if !name.is_empty()
            && text.len() >= name.len()
            && text.is_char_boundary(name.len())
            && text[..name.len()].eq_ignore_ascii_case(name)
        {
            return text[name.len()..].trim_start_matches([',', ':']).trim();
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands() {
        assert_eq!(Command::parse(" Close. "), Command::Close);
        assert_eq!(Command::parse("new   link"), Command::NewLink);
        assert_eq!(Command::parse("LIST"), Command::List);
        assert_eq!(Command::parse("help?"), Command::Help);
        assert_eq!(Command::parse("close the door please"), Command::Text);
    }

    #[test]
    fn mentions_are_stripped() {
        assert_eq!(without_mention("icbridge close", "icbridge"), "close");
        assert_eq!(
            without_mention("Video Bot: new link", "Video Bot"),
            "new link"
        );
        assert_eq!(without_mention("Video, hi there", "Video Bot"), "hi there");
        assert_eq!(without_mention("Thanks Alice", "icbridge"), "Thanks Alice");
    }
}
