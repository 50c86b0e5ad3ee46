//! Personal data shown only as far as a reader needs it (docs/security.md):
//! a customer's full number goes to the courier who delivers to them;
//! dashboards and integrator reads get it masked.

use crate::wire::{Route, Stop};

/// `+79161234567` → `+7******4567`: enough to recognize, not to dial.
pub fn mask_phone(phone: &str) -> String {
    let chars: Vec<char> = phone.chars().collect();
    let keep_head = if chars.first() == Some(&'+') { 2 } else { 1 };
    if chars.len() <= keep_head + 4 {
        return "*".repeat(chars.len());
    }
    let tail = chars.len() - 4;
    chars.iter().enumerate().map(|(i, c)| if i < keep_head || i >= tail { *c } else { '*' }).collect()
}

impl Stop {
    pub fn mask_personal_data(&mut self) {
        self.phone = mask_phone(&self.phone);
    }
}

impl Route {
    pub fn mask_personal_data(&mut self) {
        for s in &mut self.stops {
            s.stop.mask_personal_data();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_keep_the_country_and_the_last_four_digits() {
        assert_eq!(mask_phone("+79161234567"), "+7******4567");
        assert_eq!(mask_phone("89161234567"), "8******4567");
        assert_eq!(mask_phone("+123"), "****");
    }
}
