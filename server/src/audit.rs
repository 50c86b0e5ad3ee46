//! The tamper-evident audit chain (docs/audit.md): every logged event carries
//! a hash over its canonical encoding and the previous event's hash, so
//! altering, removing or reordering one row breaks every hash after it, and
//! a digest (head seq + hash) a partner kept pins everything before it.
//!
//! The encoding is over the row as stored, so a verifier needs nothing but
//! the database (or an export). One field can lawfully change after the
//! fact: a direct call's free-text note is erased with the customer's data
//! (docs/security.md). Erasable fields enter the chain as their SHA-256, and
//! erasure writes that digest beside the emptied field, so the chain still
//! verifies after an erasure and the text itself is gone.

use sha2::{Digest, Sha256};

/// Hash of "nothing before": the link of the first event.
pub const GENESIS: [u8; 32] = [0; 32];
const DOMAIN: &[u8] = b"callahead-audit-v1";

/// Fields that erasure may empty: (the event type's tag as serde writes it,
/// field). The tag is matched in the text, so most events skip parsing.
const ERASABLE: &[(&str, &str)] = &[(r#""type":"direct_call_logged""#, "note")];

/// One event row as stored (`events` columns).
#[derive(Debug, Clone, PartialEq)]
pub struct AuditRow {
    pub seq: u64,
    pub at_ms: i64,
    pub origin_wall_ms: i64,
    pub depot_id: i64,
    pub courier_id: i64,
    pub stop_id: Option<i64>,
    /// The event's `kind` JSON as stored.
    pub kind: String,
    /// The call snapshot JSON as stored.
    pub call: Option<String>,
}

pub fn hex(hash: &[u8]) -> String {
    hash.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn parse_hex(text: &str) -> Option<[u8; 32]> {
    if text.len() != 64 || !text.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

/// The event's hash given the previous one.
pub fn link(prev: &[u8; 32], row: &AuditRow) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(DOMAIN);
    h.update(prev);
    for n in [row.seq as i64, row.at_ms, row.origin_wall_ms, row.depot_id, row.courier_id] {
        h.update(n.to_be_bytes());
    }
    match row.stop_id {
        None => h.update([0]),
        Some(s) => {
            h.update([1]);
            h.update(s.to_be_bytes());
        }
    }
    let kind = canonical_kind(&row.kind);
    h.update((kind.len() as u32).to_be_bytes());
    h.update(kind.as_bytes());
    match &row.call {
        None => h.update([0]),
        Some(c) => {
            h.update([1]);
            h.update((c.len() as u32).to_be_bytes());
            h.update(c.as_bytes());
        }
    }
    h.finalize().into()
}

/// The kind as the chain sees it: as stored, except that an event with an
/// erasable field is re-encoded (keys sorted, no spaces) with that field
/// replaced by `<field>_sha256` — the digest erasure left, or the digest of
/// the text still there.
pub fn canonical_kind(kind: &str) -> std::borrow::Cow<'_, str> {
    let Some(fields) = erasable_fields(kind) else {
        return std::borrow::Cow::Borrowed(kind);
    };
    let Ok(serde_json::Value::Object(mut map)) = serde_json::from_str::<serde_json::Value>(kind) else {
        return std::borrow::Cow::Borrowed(kind);
    };
    for field in fields.iter() {
        let digest_key = format!("{field}_sha256");
        let text = map.remove(*field);
        let kept = map.remove(&digest_key).and_then(|v| v.as_str().map(str::to_owned));
        let digest = match (kept, text) {
            (Some(d), _) => d,
            (None, Some(serde_json::Value::String(t))) => hex(&Sha256::digest(t.as_bytes())),
            (None, Some(other)) => hex(&Sha256::digest(other.to_string().as_bytes())),
            (None, None) => continue,
        };
        map.insert(digest_key, serde_json::Value::String(digest));
    }
    let mut out = String::with_capacity(kind.len());
    write_sorted(&serde_json::Value::Object(map), &mut out);
    std::borrow::Cow::Owned(out)
}

/// What erasure stores in place of an erasable kind: the fields emptied and
/// their digests kept. `None` when this kind has nothing erasable.
pub fn erase_kind(kind: &str) -> Option<String> {
    let fields = erasable_fields(kind)?;
    let serde_json::Value::Object(mut map) = serde_json::from_str::<serde_json::Value>(kind).ok()? else {
        return None;
    };
    for field in fields.iter() {
        let digest_key = format!("{field}_sha256");
        if map.contains_key(&digest_key) {
            continue; // erased before
        }
        if let Some(serde_json::Value::String(t)) = map.get(*field) {
            let digest = hex(&Sha256::digest(t.as_bytes()));
            map.insert(digest_key, serde_json::Value::String(digest));
            map.insert((*field).to_owned(), serde_json::Value::String(String::new()));
        }
    }
    serde_json::to_string(&map).ok()
}

fn erasable_fields(kind: &str) -> Option<Vec<&'static str>> {
    let fields: Vec<&'static str> =
        ERASABLE.iter().filter(|(tag, _)| kind.contains(tag)).map(|(_, f)| *f).collect();
    (!fields.is_empty()).then_some(fields)
}

fn write_sorted(v: &serde_json::Value, out: &mut String) {
    match v {
        serde_json::Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&serde_json::Value::String(k.clone()).to_string());
                out.push(':');
                write_sorted(&map[k], out);
            }
            out.push('}');
        }
        serde_json::Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_sorted(item, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// Where a chain stops holding.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Broken {
    #[error("seq {seq} is altered: its stored hash does not match its contents and the hash before it")]
    Altered { seq: u64 },
    #[error("seq {seq} is missing: the log jumps from {before} to {next}")]
    Missing { seq: u64, before: u64, next: u64 },
    #[error("seq {seq} has no hash: it was written without the audit chain")]
    Unhashed { seq: u64 },
    #[error("the digest kept for seq {seq} does not match the log: the log was rewritten up to there")]
    DigestMismatch { seq: u64 },
    #[error(
        "the digest kept for seq {seq} is beyond the log's head {head}: events were removed from the end"
    )]
    DigestBeyondHead { seq: u64, head: u64 },
}

/// Walks rows in seq order, checking each link.
#[derive(Debug)]
pub struct Verifier {
    prev_seq: u64,
    prev_hash: [u8; 32],
    expect: Vec<(u64, [u8; 32])>,
}

impl Default for Verifier {
    fn default() -> Self {
        Verifier { prev_seq: 0, prev_hash: GENESIS, expect: Vec::new() }
    }
}

impl Verifier {
    /// Also checks the chain against a digest kept elsewhere.
    pub fn expect(mut self, seq: u64, hash: [u8; 32]) -> Self {
        self.expect.push((seq, hash));
        self
    }

    pub fn check(&mut self, row: &AuditRow, stored: Option<&[u8]>) -> Result<(), Broken> {
        if row.seq != self.prev_seq + 1 {
            return Err(Broken::Missing { seq: self.prev_seq + 1, before: self.prev_seq, next: row.seq });
        }
        let Some(stored) = stored else {
            return Err(Broken::Unhashed { seq: row.seq });
        };
        let hash = link(&self.prev_hash, row);
        if stored != hash.as_slice() {
            return Err(Broken::Altered { seq: row.seq });
        }
        if let Some((seq, _)) = self.expect.iter().find(|(s, h)| *s == row.seq && *h != hash) {
            return Err(Broken::DigestMismatch { seq: *seq });
        }
        self.prev_seq = row.seq;
        self.prev_hash = hash;
        Ok(())
    }

    /// After the last row: the head, or what a kept digest says is missing.
    pub fn finish(self) -> Result<(u64, [u8; 32]), Broken> {
        if let Some((seq, _)) = self.expect.iter().find(|(s, _)| *s > self.prev_seq) {
            return Err(Broken::DigestBeyondHead { seq: *seq, head: self.prev_seq });
        }
        Ok((self.prev_seq, self.prev_hash))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(seq: u64, kind: &str) -> AuditRow {
        AuditRow {
            seq,
            at_ms: 1_700_000_000_000 + seq as i64,
            origin_wall_ms: 1_700_000_000_000,
            depot_id: 1,
            courier_id: 2,
            stop_id: Some(3),
            kind: kind.to_owned(),
            call: Some(r#"{"id":1,"status":"ringing"}"#.to_owned()),
        }
    }

    fn chain(rows: &[AuditRow]) -> Vec<[u8; 32]> {
        let mut prev = GENESIS;
        rows.iter()
            .map(|r| {
                prev = link(&prev, r);
                prev
            })
            .collect()
    }

    fn verify(rows: &[AuditRow], hashes: &[[u8; 32]]) -> Result<(u64, [u8; 32]), Broken> {
        let mut v = Verifier::default();
        for (r, h) in rows.iter().zip(hashes) {
            v.check(r, Some(h))?;
        }
        v.finish()
    }

    fn rows() -> Vec<AuditRow> {
        vec![
            row(1, r#"{"type":"call_requested"}"#),
            row(
                2,
                r#"{"type":"direct_call_logged","note":"gate code 1234","called_at":"2026-12-01T09:00:00Z"}"#,
            ),
            row(3, r#"{"type":"key_pressed","key":"1"}"#),
        ]
    }

    #[test]
    fn an_untouched_chain_verifies_to_its_head() {
        let rows = rows();
        let hashes = chain(&rows);
        assert_eq!(verify(&rows, &hashes), Ok((3, hashes[2])));
    }

    #[test]
    fn any_changed_column_names_its_seq() {
        let rows = rows();
        let hashes = chain(&rows);
        type Alter = fn(&mut AuditRow);
        let alterations: [Alter; 7] = [
            |r| r.at_ms += 1,
            |r| r.origin_wall_ms += 1,
            |r| r.depot_id = 9,
            |r| r.courier_id = 9,
            |r| r.stop_id = None,
            |r| r.kind = r.kind.replace("gate", "door"),
            |r| r.call = None,
        ];
        for alter in alterations {
            let mut changed = rows.clone();
            alter(&mut changed[1]);
            assert_eq!(verify(&changed, &hashes), Err(Broken::Altered { seq: 2 }));
        }
    }

    #[test]
    fn a_removed_row_is_named_missing() {
        let rows = rows();
        let hashes = chain(&rows);
        let (r, h) = ([rows[0].clone(), rows[2].clone()], [hashes[0], hashes[2]]);
        assert_eq!(verify(&r, &h), Err(Broken::Missing { seq: 2, before: 1, next: 3 }));
    }

    #[test]
    fn a_rewritten_chain_is_caught_by_a_kept_digest() {
        let rows = rows();
        let kept = chain(&rows)[2];
        let mut forged = rows.clone();
        forged[0].kind = r#"{"type":"call_cancelled"}"#.to_owned();
        let hashes = chain(&forged); // every hash recomputed by the forger
        assert_eq!(verify(&forged, &hashes), Ok((3, hashes[2])), "self-consistent on its own");
        let mut v = Verifier::default().expect(3, kept);
        let result = forged.iter().zip(&hashes).try_for_each(|(r, h)| v.check(r, Some(h)));
        assert_eq!(result, Err(Broken::DigestMismatch { seq: 3 }));
        // A log cut short before a kept digest says so.
        let v = Verifier::default().expect(7, kept);
        assert_eq!(v.finish(), Err(Broken::DigestBeyondHead { seq: 7, head: 0 }));
    }

    #[test]
    fn erasing_a_note_keeps_the_chain_and_drops_the_text() {
        let rows = rows();
        let hashes = chain(&rows);
        let mut erased = rows.clone();
        erased[1].kind = erase_kind(&rows[1].kind).expect("erasable");
        assert!(!erased[1].kind.contains("gate code"), "{}", erased[1].kind);
        assert_eq!(verify(&erased, &hashes), Ok((3, hashes[2])));
        // Erasing twice changes nothing; a kind without notes is left alone.
        assert_eq!(erase_kind(&erased[1].kind).as_deref(), Some(erased[1].kind.as_str()));
        assert_eq!(erase_kind(&rows[0].kind), None);
        // A forged digest in place of the text is still a change.
        let mut forged = erased.clone();
        forged[1].kind = forged[1].kind.replace(&hex(&Sha256::digest(b"gate code 1234")), &hex(&[7; 32]));
        assert_eq!(verify(&forged, &hashes), Err(Broken::Altered { seq: 2 }));
    }

    #[test]
    fn hex_round_trips_and_refuses_garbage() {
        let h = [0xab; 32];
        assert_eq!(parse_hex(&hex(&h)), Some(h));
        assert_eq!(parse_hex("zz"), None);
        assert_eq!(parse_hex(&"g".repeat(64)), None);
    }
}
