//! The one bounded cache of the container readers: block bitmaps (VHD), BAT pages (VHDX),
//! grain tables and grains (VMDK), L1 pages, L2 tables and clusters (qcow2), chunks, chunk
//! tables and open segment files (EWF).

use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;
use std::sync::{Mutex, MutexGuard};

/// A least-recently-used map of at most `capacity` entries, shared between the threads
/// reading one disk. Values are cloned out (they are `Arc`s), and the lock is held only to
/// look a key up or to store a value, never while a value is loaded.
pub(super) struct Lru<K, V> {
    capacity: usize,
    inner: Mutex<Inner<K, V>>,
}

struct Inner<K, V> {
    /// Counts uses: a key's last use is the tick it was given then.
    tick: u64,
    /// Each key's value and the tick of its last use.
    entries: HashMap<K, (V, u64)>,
    /// The keys by the tick of their last use, the least recently used first.
    order: BTreeMap<u64, K>,
}

impl<K: Copy + Eq + Hash, V: Clone> Lru<K, V> {
    /// A cache of at most `capacity` entries (none at all for 0).
    pub(super) fn new(capacity: usize) -> Lru<K, V> {
        Lru {
            capacity,
            inner: Mutex::new(Inner {
                tick: 0,
                entries: HashMap::new(),
                order: BTreeMap::new(),
            }),
        }
    }

    /// A cache of as many values of up to `entry` bytes as `budget` bytes hold, within
    /// `min..=max` entries.
    pub(super) fn with_budget(budget: u64, entry: u64, min: usize, max: usize) -> Lru<K, V> {
        let fits = usize::try_from(budget / entry.max(1)).unwrap_or(max);
        Lru::new(fits.clamp(min, max))
    }

    /// The value for `key`: the cached one, or else the one `load` gives, which is then
    /// kept (unless another thread kept one for `key` meanwhile). `load` runs without the
    /// lock, so that other threads go on reading; what it fails with is not kept.
    pub(super) fn get_or_load<E>(
        &self,
        key: K,
        load: impl FnOnce() -> Result<V, E>,
    ) -> Result<V, E> {
        if let Some(value) = self.lock().get(key) {
            return Ok(value);
        }
        let value = load()?;
        let mut inner = self.lock();
        if !inner.entries.contains_key(&key) {
            inner.insert(key, value.clone(), self.capacity);
        }
        Ok(value)
    }

    /// Keeps `value` for `key` (in place of any value kept for it), dropping the least
    /// recently used entry when the cache is full.
    pub(super) fn insert(&self, key: K, value: V) {
        self.lock().insert(key, value, self.capacity);
    }

    /// How many entries are kept.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.lock().entries.len()
    }

    /// The lock, taken even when a thread panicked while holding it: the cache holds only
    /// checked values and is never left half-changed by a panic.
    fn lock(&self) -> MutexGuard<'_, Inner<K, V>> {
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl<K: Copy + Eq + Hash, V: Clone> Inner<K, V> {
    fn next_tick(&mut self) -> u64 {
        self.tick += 1;
        self.tick
    }

    fn get(&mut self, key: K) -> Option<V> {
        let tick = self.next_tick();
        let (value, used) = self.entries.get_mut(&key)?;
        self.order.remove(used);
        *used = tick;
        self.order.insert(tick, key);
        Some(value.clone())
    }

    fn insert(&mut self, key: K, value: V, capacity: usize) {
        if capacity == 0 {
            return;
        }
        let tick = self.next_tick();
        if let Some((_, used)) = self.entries.remove(&key) {
            self.order.remove(&used);
        }
        while self.entries.len() >= capacity {
            let Some((_, oldest)) = self.order.pop_first() else {
                break;
            };
            self.entries.remove(&oldest);
        }
        self.entries.insert(key, (value, tick));
        self.order.insert(tick, key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::convert::Infallible;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    fn get(lru: &Lru<u64, char>, key: u64) -> Option<char> {
        lru.lock().get(key)
    }

    #[test]
    fn evicts_the_least_recently_used() {
        let lru = Lru::new(2);
        lru.insert(1, 'a');
        lru.insert(2, 'b');
        assert_eq!(get(&lru, 1), Some('a'));
        lru.insert(3, 'c');
        assert_eq!(get(&lru, 2), None);
        assert_eq!(get(&lru, 1), Some('a'));
        assert_eq!(get(&lru, 3), Some('c'));
        // Replacing a kept value makes it the most recently used, and takes no room.
        lru.insert(1, 'd');
        assert_eq!(lru.len(), 2);
        lru.insert(4, 'e');
        assert_eq!(get(&lru, 3), None);
        assert_eq!(get(&lru, 1), Some('d'));
        assert_eq!(get(&lru, 4), Some('e'));
    }

    #[test]
    fn get_or_load_loads_only_what_is_not_kept() {
        let lru: Lru<u64, u64> = Lru::new(2);
        let loads = AtomicUsize::new(0);
        let load = |key: u64| {
            lru.get_or_load(key, || {
                loads.fetch_add(1, Ordering::Relaxed);
                Ok::<_, Infallible>(key * 10)
            })
            .unwrap()
        };
        for key in [1, 2, 1, 3] {
            assert_eq!(load(key), key * 10);
        }
        assert_eq!(loads.load(Ordering::Relaxed), 3);
        // 2 was the least recently used: it is loaded again, 1 is not.
        assert_eq!(load(1), 10);
        assert_eq!(loads.load(Ordering::Relaxed), 3);
        assert_eq!(load(2), 20);
        assert_eq!(loads.load(Ordering::Relaxed), 4);
    }

    #[test]
    fn a_failed_load_is_not_kept() {
        let lru: Lru<u64, u64> = Lru::new(4);
        assert_eq!(lru.get_or_load(1, || Err("unreadable")), Err("unreadable"));
        assert_eq!(lru.len(), 0);
        assert_eq!(lru.get_or_load(1, || Ok::<_, &str>(7)), Ok(7));
        assert_eq!(lru.get_or_load(1, || Err("not called")), Ok(7));
    }

    #[test]
    fn capacity_one_keeps_the_last() {
        let lru = Lru::new(1);
        lru.insert(1, 'a');
        assert_eq!(get(&lru, 1), Some('a'));
        lru.insert(2, 'b');
        assert_eq!(get(&lru, 1), None);
        assert_eq!(get(&lru, 2), Some('b'));
        assert_eq!(lru.len(), 1);
    }

    #[test]
    fn capacity_zero_keeps_nothing() {
        let lru = Lru::new(0);
        lru.insert(1, 'a');
        assert_eq!(get(&lru, 1), None);
        assert_eq!(lru.get_or_load(1, || Ok::<_, Infallible>('b')), Ok('b'));
        assert_eq!(lru.len(), 0);
    }

    #[test]
    fn budgets_are_clamped() {
        let capacity =
            |budget, entry, min, max| Lru::<u64, u8>::with_budget(budget, entry, min, max).capacity;
        assert_eq!(capacity(4 << 20, 512, 8, 1024), 1024);
        assert_eq!(capacity(4 << 20, 64 << 10, 8, 1024), 64);
        assert_eq!(capacity(4 << 20, 1 << 20, 8, 1024), 8);
        assert_eq!(capacity(4 << 20, 8 << 20, 0, 64), 0);
        assert_eq!(capacity(4 << 20, 0, 2, 16), 16);
    }

    #[test]
    fn a_load_may_use_the_cache_itself() {
        // The lock is not held while loading: a load that reads another key of the same
        // cache (or that another thread runs meanwhile) does not deadlock.
        let lru: Lru<u64, u64> = Lru::new(4);
        let value = lru.get_or_load(1, || {
            let inner = lru.get_or_load(2, || Ok::<_, Infallible>(20))?;
            Ok::<_, Infallible>(inner + 1)
        });
        assert_eq!(value, Ok(21));
        assert_eq!(lru.len(), 2);
    }

    #[test]
    fn threads_share_one_cache() {
        let lru: Arc<Lru<u64, Arc<[u64]>>> = Arc::new(Lru::new(8));
        let threads: Vec<_> = (0..8u64)
            .map(|t| {
                let lru = Arc::clone(&lru);
                std::thread::spawn(move || {
                    for i in 0..2000u64 {
                        let key = (i * 7 + t) % 24;
                        let value = lru
                            .get_or_load(key, || Ok::<_, Infallible>(Arc::from(vec![key; 4])))
                            .unwrap();
                        assert_eq!(value[..], [key; 4]);
                        if i % 97 == 0 {
                            lru.insert(key, Arc::from(vec![key; 4]));
                        }
                        assert!(lru.len() <= 8);
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        let inner = lru.lock();
        assert!(inner.entries.len() <= 8);
        assert_eq!(inner.entries.len(), inner.order.len());
        for (tick, key) in &inner.order {
            assert_eq!(inner.entries[key].1, *tick);
        }
    }

    #[test]
    fn a_panic_while_locked_does_not_poison_it() {
        let lru: Arc<Lru<u64, char>> = Arc::new(Lru::new(2));
        lru.insert(1, 'a');
        let other = Arc::clone(&lru);
        let _ = std::thread::spawn(move || {
            let _guard = other.lock();
            panic!("a reader panics while holding the lock");
        })
        .join();
        assert!(lru.inner.is_poisoned());
        assert_eq!(get(&lru, 1), Some('a'));
        lru.insert(2, 'b');
        assert_eq!(lru.len(), 2);
    }
}
