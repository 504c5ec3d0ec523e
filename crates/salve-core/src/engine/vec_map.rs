//! A few entries by name, kept as a sorted vector: what the engine keeps of each
//! Kubernetes object (its labels, its conditions) is a handful of pairs, and a
//! `BTreeMap`'s first node alone is about half a kilobyte, ten thousand times over.

use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VecMap<V>(Vec<(String, V)>);

impl<V> Default for VecMap<V> {
    fn default() -> Self {
        VecMap(Vec::new())
    }
}

impl<V> VecMap<V> {
    pub fn get(&self, key: &str) -> Option<&V> {
        self.0
            .binary_search_by(|(k, _)| k.as_str().cmp(key))
            .ok()
            .map(|i| &self.0[i].1)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&String, &V)> {
        self.0.iter().map(|(k, v)| (k, v))
    }

    pub fn keys(&self) -> impl Iterator<Item = &String> {
        self.0.iter().map(|(k, _)| k)
    }
}

/// From a map's entries, which come sorted and unique.
impl<'a, V: Clone + 'a> FromIterator<(&'a String, &'a V)> for VecMap<V> {
    fn from_iter<I: IntoIterator<Item = (&'a String, &'a V)>>(entries: I) -> Self {
        let mut pairs: Vec<(String, V)> = entries
            .into_iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        // Sorted already when they come from a BTreeMap; sorting again costs nothing
        // then and keeps `get` right for any other source.
        pairs.sort_by(|a, b| a.0.cmp(&b.0));
        pairs.dedup_by(|a, b| a.0 == b.0);
        pairs.shrink_to_fit();
        VecMap(pairs)
    }
}

impl<V: Clone> From<&BTreeMap<String, V>> for VecMap<V> {
    fn from(map: &BTreeMap<String, V>) -> Self {
        map.iter().collect()
    }
}

impl<V: Clone> VecMap<V> {
    pub fn to_btree(&self) -> BTreeMap<String, V> {
        self.0.iter().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_what_it_was_given_and_nothing_else() {
        let map: BTreeMap<String, u8> = [("b".into(), 2), ("a".into(), 1), ("c".into(), 3)].into();
        let kept = VecMap::from(&map);
        assert_eq!(kept.get("a"), Some(&1));
        assert_eq!(kept.get("c"), Some(&3));
        assert_eq!(kept.get("d"), None);
        assert_eq!(kept.to_btree(), map);
        let unsorted: VecMap<u8> = [(&"z".to_string(), &1), (&"m".to_string(), &2)]
            .into_iter()
            .collect();
        assert_eq!(unsorted.keys().collect::<Vec<_>>(), ["m", "z"]);
        assert_eq!(unsorted.get("z"), Some(&1));
    }
}
