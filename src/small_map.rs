//! A map for the handful of entries the SDK keeps per reader or per pending request: a
//! vector searched in order, oldest entry first. Every `HashMap` or `BTreeMap` key/value
//! pair compiles its own copy of the map's code (several KB of wasm each); this one is a few
//! hundred bytes, and for a few entries it is as fast. The maps that are serialized are
//! `pos_protocol::SortedMap` (sorted by key, as their JSON was); this one keeps insertion
//! order, for `remove_oldest`.

#[derive(Debug)]
pub struct SmallMap<V> {
    entries: Vec<(String, V)>,
}

impl<V> Default for SmallMap<V> {
    fn default() -> Self {
        Self::new()
    }
}

impl<V> SmallMap<V> {
    pub const fn new() -> Self {
        Self {
            entries: Vec::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn position(&self, key: &str) -> Option<usize> {
        self.entries.iter().position(|(k, _)| k == key)
    }

    pub fn get(&self, key: &str) -> Option<&V> {
        self.position(key).map(|i| &self.entries[i].1)
    }

    pub fn contains_key(&self, key: &str) -> bool {
        self.position(key).is_some()
    }

    /// Sets `key` to `value`; the value it had, if any (its place in the order is kept).
    pub fn insert(&mut self, key: String, value: V) -> Option<V> {
        match self.position(&key) {
            Some(i) => Some(std::mem::replace(&mut self.entries[i].1, value)),
            None => {
                self.entries.push((key, value));
                None
            }
        }
    }

    pub fn remove(&mut self, key: &str) -> Option<V> {
        self.position(key).map(|i| self.entries.remove(i).1)
    }

    /// Removes the entry inserted first.
    pub fn remove_oldest(&mut self) -> Option<(String, V)> {
        if self.entries.is_empty() {
            None
        } else {
            Some(self.entries.remove(0))
        }
    }

    pub fn clear(&mut self) {
        self.entries.clear();
    }

    /// Empties the map, handing out every entry.
    pub fn drain(&mut self) -> impl Iterator<Item = (String, V)> + '_ {
        self.entries.drain(..)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_get_replace_remove_and_order() {
        let mut m = SmallMap::new();
        assert!(m.is_empty());
        assert_eq!(m.insert("a".into(), 1), None);
        assert_eq!(m.insert("b".into(), 2), None);
        assert_eq!(m.insert("a".into(), 3), Some(1));
        assert_eq!(m.len(), 2);
        assert_eq!(m.get("a"), Some(&3));
        assert!(m.contains_key("b"));
        assert!(!m.contains_key("c"));
        assert_eq!(m.remove("c"), None);
        // "a" was inserted first; replacing it kept its place.
        assert_eq!(m.remove_oldest(), Some(("a".to_string(), 3)));
        assert_eq!(m.remove("b"), Some(2));
        assert_eq!(m.remove_oldest(), None);
        m.insert("x".into(), 9);
        m.insert("y".into(), 8);
        let drained: Vec<_> = m.drain().collect();
        assert_eq!(drained, vec![("x".to_string(), 9), ("y".to_string(), 8)]);
        assert!(m.is_empty());
        m.insert("z".into(), 1);
        m.clear();
        assert_eq!(m.get("z"), None);
    }
}
