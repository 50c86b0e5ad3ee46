//! The message a robot speaks: per-language templates with variables,
//! checked when they are saved (an unknown variable or a missing
//! translation is refused then, never discovered at call time) and rendered
//! per stop into the script the telephony provider speaks.
//!
//! Syntax: `{customer_name}` inserts a variable; `{{` and `}}` are literal
//! braces.
//!
//! Besides the spoken script, a language may carry the text message sent
//! after key 2 (the reschedule link), one per channel; each is checked
//! against its channel's length limit as rendered with [`Vars::longest`].

use crate::channel::Channel;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// Every variable a template may use.
pub const VARIABLES: [&str; 7] = [
    "customer_name",
    "order_numbers",
    "amount",
    "window_start",
    "window_end",
    "courier_name",
    "company_name",
];

/// Only in text messages: the reschedule link.
pub const LINK: &str = "link";

/// Languages the product speaks. Serialized as ISO 639-1 codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Language {
    Ru,
    En,
}

impl Language {
    pub fn code(self) -> &'static str {
        match self {
            Language::Ru => "ru",
            Language::En => "en",
        }
    }
}

/// What the robot says in one language. Every part is a template.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MessageTemplate {
    /// The personal message: who calls, about what, when.
    pub message: String,
    /// The keypad menu, read after the message and repeated on no input.
    pub menu: String,
    /// Said before repeating the menu when nothing was pressed.
    pub no_input: String,
    /// Said after a choice, before hanging up.
    pub goodbye: String,
    /// The reschedule-link text per channel (variables as above plus
    /// `{link}`); a channel without one gets the built-in wording.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub texts: BTreeMap<Channel, String>,
}

/// A depot's templates: one per language, and the language used when a
/// customer's is unknown or not translated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TemplateSet {
    pub default_language: Language,
    pub templates: BTreeMap<Language, MessageTemplate>,
}

impl Default for TemplateSet {
    fn default() -> Self {
        TemplateSet {
            default_language: Language::Ru,
            templates: BTreeMap::from([
                (Language::Ru, MessageTemplate::builtin(Language::Ru)),
                (Language::En, MessageTemplate::builtin(Language::En)),
            ]),
        }
    }
}

impl MessageTemplate {
    /// The product's own wording, used until a depot saves its own.
    pub fn builtin(language: Language) -> MessageTemplate {
        let (message, menu, no_input, goodbye) = match language {
            Language::Ru => (
                "Здравствуйте, {customer_name}! Это {company_name}. Ваш заказ {order_numbers} на сумму {amount} \
                 курьер {courier_name} привезёт сегодня с {window_start} до {window_end}.",
                "Нажмите 1, чтобы подтвердить, 2 — чтобы выбрать другое время, 3 — чтобы отказаться, \
                 0 — чтобы поговорить с курьером.",
                "Мы не услышали ваш выбор.",
                "Спасибо, до свидания!",
            ),
            Language::En => (
                "Hello {customer_name}, this is {company_name}. Your order {order_numbers} for {amount} \
                 arrives today between {window_start} and {window_end} with courier {courier_name}.",
                "Press 1 to confirm, 2 to choose another time, 3 to decline, 0 to talk to your courier.",
                "We did not hear your choice.",
                "Thank you, goodbye!",
            ),
        };
        MessageTemplate {
            message: message.into(),
            menu: menu.into(),
            no_input: no_input.into(),
            goodbye: goodbye.into(),
            texts: BTreeMap::new(),
        }
    }

    fn parts(&self) -> [(&'static str, &str); 4] {
        [
            ("message", &self.message),
            ("menu", &self.menu),
            ("no_input", &self.no_input),
            ("goodbye", &self.goodbye),
        ]
    }
}

/// Why a template set cannot be saved; `field` names the part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateError {
    pub field: String,
    pub message: String,
}

impl fmt::Display for TemplateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// One piece of a parsed template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece<'a> {
    Text(std::borrow::Cow<'a, str>),
    Var(&'a str),
}

fn parse(template: &str) -> Result<Vec<Piece<'_>>, String> {
    parse_with(template, false)
}

/// `link`: whether `{link}` is allowed (text messages only).
fn parse_with(template: &str, link: bool) -> Result<Vec<Piece<'_>>, String> {
    let mut pieces = Vec::new();
    let mut text = String::new();
    let mut rest = template;
    while let Some(i) = rest.find(['{', '}']) {
        text.push_str(&rest[..i]);
        let (brace, after) = (&rest[i..i + 1], &rest[i + 1..]);
        if after.starts_with(brace) {
            text.push_str(brace);
            rest = &after[1..];
            continue;
        }
        if brace == "}" {
            return Err("a lone `}`; write `}}` for a brace".into());
        }
        let Some(end) = after.find('}') else {
            return Err("a `{` without its `}`; write `{{` for a brace".into());
        };
        let name = &after[..end];
        if !(VARIABLES.contains(&name) || link && name == LINK) {
            let extra = if link { ", link" } else { "" };
            return Err(format!("unknown variable {{{name}}}; known: {}{extra}", VARIABLES.join(", ")));
        }
        if !text.is_empty() {
            pieces.push(Piece::Text(std::mem::take(&mut text).into()));
        }
        pieces.push(Piece::Var(name));
        rest = &after[end + 1..];
    }
    text.push_str(rest);
    if !text.is_empty() {
        pieces.push(Piece::Text(text.into()));
    }
    Ok(pieces)
}

impl TemplateSet {
    /// Everything that could go wrong at call time, found now.
    pub fn check(&self) -> Result<(), TemplateError> {
        if !self.templates.contains_key(&self.default_language) {
            return Err(TemplateError {
                field: "default_language".into(),
                message: format!("no template for the default language {:?}", self.default_language.code()),
            });
        }
        for (lang, t) in &self.templates {
            for (part, text) in t.parts() {
                let field = format!("templates.{}.{part}", lang.code());
                if text.trim().is_empty() {
                    return Err(TemplateError { field, message: "must not be empty".into() });
                }
                if text.chars().count() > 1000 {
                    return Err(TemplateError { field, message: "at most 1000 characters".into() });
                }
                crate::validate::plain_text(&field, text, true)
                    .map_err(|e| TemplateError { field: field.clone(), message: e.message })?;
                parse(text).map_err(|message| TemplateError { field, message })?;
            }
            for (channel, text) in &t.texts {
                let field = format!("templates.{}.texts.{channel}", lang.code());
                if text.trim().is_empty() {
                    return Err(TemplateError { field, message: "must not be empty".into() });
                }
                crate::validate::plain_text(&field, text, true)
                    .map_err(|e| TemplateError { field: field.clone(), message: e.message })?;
                parse_with(text, true).map_err(|message| TemplateError { field: field.clone(), message })?;
                if !text.contains("{link}") {
                    return Err(TemplateError { field, message: "must contain {link}".into() });
                }
                let longest = render_text(text, &Vars::longest(), &"x".repeat(LONGEST_LINK));
                channel.check_length(&longest).map_err(|why| TemplateError {
                    field,
                    message: format!(
                        "too long for {channel} when rendered with the longest expected values: {why}"
                    ),
                })?;
            }
        }
        Ok(())
    }

    /// The template for `language`, or the default one.
    pub fn for_language(&self, language: Option<Language>) -> (Language, MessageTemplate) {
        let lang = language.filter(|l| self.templates.contains_key(l)).unwrap_or(self.default_language);
        let template = self
            .templates
            .get(&lang)
            .cloned()
            .unwrap_or_else(|| MessageTemplate::builtin(self.default_language));
        (lang, template)
    }
}

/// The values of a template's variables for one stop, already formatted
/// for the customer (local times, amount with currency).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Vars {
    pub customer_name: String,
    pub order_numbers: String,
    pub amount: String,
    pub window_start: String,
    pub window_end: String,
    pub courier_name: String,
    pub company_name: String,
}

/// A reschedule link's length, generously: a 30-character host and the
/// 43-character token.
pub const LONGEST_LINK: usize = 84;

impl Vars {
    /// The longest values a text template is checked with: a template that
    /// fits with these fits for nearly every customer. Latin, so a template
    /// that is itself Cyrillic is counted in UCS-2 and one that is not is
    /// not pushed there by the sample values.
    pub fn longest() -> Vars {
        Vars {
            customer_name: "x".repeat(20),
            order_numbers: "x".repeat(12),
            amount: "99999.99 RUB".into(),
            window_start: "00:00".into(),
            window_end: "00:00".into(),
            courier_name: "x".repeat(15),
            company_name: "x".repeat(20),
        }
    }

    fn get(&self, name: &str) -> &str {
        match name {
            "customer_name" => &self.customer_name,
            "order_numbers" => &self.order_numbers,
            "amount" => &self.amount,
            "window_start" => &self.window_start,
            "window_end" => &self.window_end,
            "courier_name" => &self.courier_name,
            "company_name" => &self.company_name,
            _ => "",
        }
    }
}

/// Renders one checked template. A template that fails to parse (which
/// `check` rules out) renders as its raw text rather than failing a call.
pub fn render(template: &str, vars: &Vars) -> String {
    render_parsed(template, parse(template), vars, "")
}

/// Renders a checked text-message template with `link` for `{link}`.
pub fn render_text(template: &str, vars: &Vars, link: &str) -> String {
    render_parsed(template, parse_with(template, true), vars, link)
}

fn render_parsed(template: &str, parsed: Result<Vec<Piece<'_>>, String>, vars: &Vars, link: &str) -> String {
    match parsed {
        Ok(pieces) => pieces
            .iter()
            .map(|p| match p {
                Piece::Text(t) => t.as_ref(),
                Piece::Var(LINK) => link,
                Piece::Var(name) => vars.get(name),
            })
            .collect(),
        Err(_) => template.to_owned(),
    }
}

/// A whole script, rendered: what the provider speaks, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderedScript {
    pub language: Language,
    pub message: String,
    pub menu: String,
    pub no_input: String,
    pub goodbye: String,
}

impl RenderedScript {
    pub fn new(language: Language, t: &MessageTemplate, vars: &Vars) -> RenderedScript {
        RenderedScript {
            language,
            message: render(&t.message, vars),
            menu: render(&t.menu, vars),
            no_input: render(&t.no_input, vars),
            goodbye: render(&t.goodbye, vars),
        }
    }

    /// The text spoken on pickup: the message, then the menu.
    pub fn spoken(&self) -> String {
        format!("{} {}", self.message, self.menu)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn victoria() -> Vars {
        Vars {
            customer_name: "Victoria".into(),
            order_numbers: "16273".into(),
            amount: "1500 RUB".into(),
            window_start: "10:00".into(),
            window_end: "11:00".into(),
            courier_name: "Ivan".into(),
            company_name: "Callahead Express".into(),
        }
    }

    #[test]
    fn both_builtin_languages_render_every_variable() {
        let set = TemplateSet::default();
        assert_eq!(set.check(), Ok(()));
        for lang in [Language::Ru, Language::En] {
            let (_, t) = set.for_language(Some(lang));
            let s = RenderedScript::new(lang, &t, &victoria());
            for value in ["Victoria", "16273", "1500 RUB", "10:00", "11:00", "Ivan", "Callahead Express"] {
                assert!(s.message.contains(value), "{lang:?} message lacks {value}: {}", s.message);
            }
            assert!(!s.spoken().contains('{'), "nothing left unrendered: {}", s.spoken());
        }
        let ru = RenderedScript::new(Language::Ru, &set.for_language(Some(Language::Ru)).1, &victoria());
        assert!(ru.message.starts_with("Здравствуйте, Victoria!"), "{}", ru.message);
    }

    #[test]
    fn braces_escape_and_variables_sit_anywhere() {
        let v = victoria();
        assert_eq!(render("{customer_name}", &v), "Victoria");
        assert_eq!(render("{{not a var}} {courier_name}!", &v), "{not a var} Ivan!");
        assert_eq!(render("no vars", &v), "no vars");
    }

    #[test]
    fn an_unknown_variable_is_refused_when_saved_with_the_part_it_is_in() {
        let mut set = TemplateSet::default();
        if let Some(t) = set.templates.get_mut(&Language::En) {
            t.message = "Hello {customer_nmae}".into();
        }
        let e = set.check().expect_err("refused");
        assert_eq!(e.field, "templates.en.message");
        assert!(e.message.contains("customer_nmae") && e.message.contains("customer_name"), "{e}");
    }

    #[test]
    fn unbalanced_braces_and_empty_parts_are_refused() {
        for (bad, why) in [("Hello {customer_name", "without its"), ("Hello }", "lone"), ("  ", "empty")] {
            let mut set = TemplateSet::default();
            if let Some(t) = set.templates.get_mut(&Language::Ru) {
                t.goodbye = bad.into();
            }
            let e = set.check().expect_err("refused");
            assert_eq!(e.field, "templates.ru.goodbye");
            assert!(e.message.contains(why), "{bad:?}: {e}");
        }
    }

    #[test]
    fn a_missing_translation_of_the_default_language_is_refused_and_others_fall_back() {
        let set = TemplateSet {
            default_language: Language::Ru,
            templates: BTreeMap::from([(Language::En, MessageTemplate::builtin(Language::En))]),
        };
        assert_eq!(set.check().map_err(|e| e.field), Err("default_language".into()));
        let en_only = TemplateSet { default_language: Language::En, ..set };
        assert_eq!(en_only.check(), Ok(()));
        assert_eq!(en_only.for_language(Some(Language::Ru)).0, Language::En, "untranslated: the default");
        assert_eq!(en_only.for_language(None).0, Language::En);
    }

    #[test]
    fn text_templates_are_checked_against_their_channel_limit() {
        let with_text = |channel: Channel, text: &str| {
            let mut set = TemplateSet::default();
            if let Some(t) = set.templates.get_mut(&Language::Ru) {
                t.texts.insert(channel, text.into());
            }
            set.check()
        };
        let short_ru = "{company_name}: выберите время доставки заказа {order_numbers}: {link}";
        assert_eq!(with_text(Channel::Sms, short_ru), Ok(()));
        // Cyrillic: 67 per part, so 3 segments hold about 200 characters.
        let long_ru = format!("{} {{link}}", "Очень длинный текст. ".repeat(6));
        let e = with_text(Channel::Sms, &long_ru).expect_err("over 3 segments");
        assert_eq!(e.field, "templates.ru.texts.sms");
        assert!(e.message.contains("SMS segments") && e.message.contains("UCS-2"), "{e}");
        assert_eq!(with_text(Channel::MessengerA, &long_ru), Ok(()), "messengers take longer texts");
        let e = with_text(Channel::MessengerB, &format!("{} {{link}}", "a".repeat(1000))).expect_err("long");
        assert_eq!(e.field, "templates.ru.texts.messenger_b");
        let e = with_text(Channel::Sms, "no link here").expect_err("no link");
        assert!(e.message.contains("{link}"), "{e}");
        let e = with_text(Channel::Sms, "{link} {window}").expect_err("unknown var");
        assert!(e.message.contains("unknown variable {window}"), "{e}");
        // `{link}` belongs to texts only.
        let mut set = TemplateSet::default();
        if let Some(t) = set.templates.get_mut(&Language::En) {
            t.message = "Hi {link}".into();
        }
        assert_eq!(set.check().map_err(|e| e.field), Err("templates.en.message".into()));
        let v = victoria();
        assert_eq!(
            render_text("{company_name}: {link}", &v, "https://x/r/t"),
            "Callahead Express: https://x/r/t"
        );
    }

    #[test]
    fn stored_templates_without_texts_still_read() {
        let old = r#"{"default_language":"en","templates":{"en":{"message":"m","menu":"k","no_input":"n","goodbye":"g"}}}"#;
        let set: TemplateSet = serde_json::from_str(old).expect("old json");
        assert!(set.templates[&Language::En].texts.is_empty());
        assert_eq!(serde_json::to_string(&set).expect("json"), old, "and write back the same");
    }

    #[test]
    fn a_template_set_reads_from_json_with_language_codes() {
        let json = serde_json::to_string(&TemplateSet::default()).expect("serializes");
        assert!(json.contains("\"default_language\":\"ru\"") && json.contains("\"en\":{"), "{json}");
        let back: TemplateSet = serde_json::from_str(&json).expect("parses");
        assert_eq!(back, TemplateSet::default());
        assert!(serde_json::from_str::<TemplateSet>(r#"{"default_language":"de","templates":{}}"#).is_err());
    }
}
