//! Generic per-key state of a [`KeyedRule`]: one state per key (VIN), created on the first
//! sample, and its snapshot / restore for the run manifest ([`StateStore`], object-safe, so
//! `run` handles detector state without naming a rule's state type).
//!
//! A snapshot of one key is the hex of the state's postcard encoding: exact for every float,
//! NaN and infinity included (JSON numbers cannot hold them).

use std::collections::HashMap;

use super::KeyedRule;

/// A snapshot that cannot be restored.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The manifest value is not a string.
    #[error("state is not a hex string")]
    NotHex,
    /// Not hex digits.
    #[error(transparent)]
    Hex(#[from] hex::FromHexError),
    /// The bytes are not a state of this rule.
    #[error(transparent)]
    Decode(#[from] postcard::Error),
}

/// Detector state of every key (VIN) for one keyed rule `R`.
pub struct KeyedStates<R: KeyedRule> {
    /// Keyed by VIN with aHash (randomly seeded per process, so chosen keys cannot aim at
    /// one bucket; several times faster than std's SipHash on 17-byte VINs, which was ≈ 8 %
    /// of the pipeline thread of an OBD ingest).
    states: HashMap<String, R::State, ahash::RandomState>,
}

impl<R: KeyedRule> Default for KeyedStates<R> {
    fn default() -> Self {
        KeyedStates {
            states: HashMap::default(),
        }
    }
}

impl<R: KeyedRule> KeyedStates<R> {
    /// Feeds one sample of `key` (state created on first use); pushes findings to `out`.
    pub fn update(
        &mut self,
        key: &str,
        sample: &R::Sample,
        params: &R::Params,
        out: &mut Vec<R::Finding>,
    ) {
        let st = match self.states.get_mut(key) {
            Some(s) => s,
            None => self.states.entry(key.to_string()).or_default(),
        };
        R::update(st, sample, params, out);
    }

    /// End-of-input verdicts of `key` ([`KeyedRule::finish`]); nothing for an unknown key.
    pub fn finish(&mut self, key: &str, params: &R::Params, out: &mut Vec<R::Finding>) {
        if let Some(st) = self.states.get_mut(key) {
            R::finish(st, params, out);
        }
    }

    /// The state of `key`.
    pub fn get(&self, key: &str) -> Option<&R::State> {
        self.states.get(key)
    }
}

/// Snapshot and restore of per-key detector state, whatever the rule.
pub trait StateStore {
    /// Keys with a state.
    fn len(&self) -> usize;
    /// True when no key has a state.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Every key with a state (any order).
    fn keys(&self) -> Vec<&str>;
    /// Snapshot of `key` (hex of its postcard encoding); `None` for an unknown key or a state
    /// that cannot be encoded.
    fn snapshot(&self, key: &str) -> Option<serde_json::Value>;
    /// Replaces the state of `key` by a snapshot.
    fn restore(&mut self, key: &str, snapshot: &serde_json::Value) -> Result<(), StateError>;
    /// Forgets `key` (its partition was revoked).
    fn remove(&mut self, key: &str);
}

impl<R: KeyedRule> StateStore for KeyedStates<R> {
    fn len(&self) -> usize {
        self.states.len()
    }

    fn keys(&self) -> Vec<&str> {
        self.states.keys().map(String::as_str).collect()
    }

    fn snapshot(&self, key: &str) -> Option<serde_json::Value> {
        let s = self.states.get(key)?;
        postcard::to_allocvec(s)
            .ok()
            .map(|b| serde_json::Value::String(hex::encode(b)))
    }

    fn restore(&mut self, key: &str, snapshot: &serde_json::Value) -> Result<(), StateError> {
        let h = snapshot.as_str().ok_or(StateError::NotHex)?;
        let s: R::State = postcard::from_bytes(&hex::decode(h)?)?;
        self.states.insert(key.to_string(), s);
        Ok(())
    }

    fn remove(&mut self, key: &str) {
        self.states.remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::twc::{ObdPoint, Twc, TwcThresholds};

    /// A state fed 400 warm samples survives snapshot → restore bit for bit, and a value that
    /// is not hex or not a state is refused with its reason.
    #[test]
    fn snapshot_restore_round_trip() {
        let th = TwcThresholds::default();
        let mut a = KeyedStates::<Twc>::default();
        let mut out = Vec::new();
        for i in 0..400i64 {
            let p = ObdPoint {
                t_ms: 1_700_000_000_000 + i * 1000,
                speed_kmh: Some(50.0),
                engine_rpm: Some(1800.0),
                coolant_c: Some(85.0),
                upstream_lambda: Some(1.0 + 0.01 * ((i % 7) as f64 - 3.0)),
                rear_o2_v: Some(0.6 + 0.001 * (i % 5) as f64),
                fuel_flow_lph: Some(4.0),
                ..Default::default()
            };
            a.update("V1", &p, &th, &mut out);
        }
        assert_eq!(a.keys(), ["V1"]);
        let snap = a.snapshot("V1").unwrap();
        let mut b = KeyedStates::<Twc>::default();
        b.restore("V1", &snap).unwrap();
        assert_eq!(b.snapshot("V1"), Some(snap));
        assert_eq!(
            postcard::to_allocvec(b.get("V1").unwrap()).unwrap(),
            postcard::to_allocvec(a.get("V1").unwrap()).unwrap()
        );
        assert!(a.snapshot("V2").is_none());
        let e = b.restore("V2", &serde_json::json!(3)).unwrap_err();
        assert_eq!(e.to_string(), "state is not a hex string");
        assert!(b.restore("V2", &serde_json::json!("zz")).is_err());
        assert!(b.restore("V2", &serde_json::json!("")).is_err());
        b.remove("V1");
        assert!(b.is_empty());
    }
}
