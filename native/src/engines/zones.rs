//! The zone table: Iceberg Memory zones and absorption zones, one row per
//! (instrument, kind, side, price bucket), kept for the session and restorable.

use rustc_hash::FxHashMap;

use super::records::ZoneRec;
use super::table::Table;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Key {
    price: i64,
    instrument_id: u32,
    side: u8,
    kind: u8,
}

pub struct ZoneTable {
    pub rows: Table<ZoneRec>,
    index: FxHashMap<Key, u32>,
    /// Zones that could not be stored because the table was full.
    pub dropped: u64,
}

impl ZoneTable {
    pub fn new(capacity: usize) -> Self {
        let mut index = FxHashMap::default();
        index.reserve(capacity);
        Self { rows: Table::new(capacity), index, dropped: 0 }
    }

    /// The zone's row, created (zeroed, with its key fields and `first_ts` set) if new.
    /// `None` only when the table is full.
    pub fn upsert(&mut self, instrument_id: u32, kind: u8, side: u8, price: i64, ts: u64) -> Option<&mut ZoneRec> {
        let key = Key { price, instrument_id, side, kind };
        let idx = match self.index.get(&key) {
            Some(&i) => i,
            None => {
                let row = ZoneRec { price, instrument_id, side, kind, first_ts: ts, last_ts: ts, ..Default::default() };
                match self.rows.push(row) {
                    Some(i) => {
                        self.index.insert(key, i);
                        i
                    }
                    None => {
                        self.dropped += 1;
                        return None;
                    }
                }
            }
        };
        self.rows.get_mut(idx)
    }

    pub fn get(&self, instrument_id: u32, kind: u8, side: u8, price: i64) -> Option<&ZoneRec> {
        let &i = self.index.get(&Key { price, instrument_id, side, kind })?;
        self.rows.get(i)
    }

    pub fn get_mut(&mut self, instrument_id: u32, kind: u8, side: u8, price: i64) -> Option<&mut ZoneRec> {
        let &i = self.index.get(&Key { price, instrument_id, side, kind })?;
        self.rows.get_mut(i)
    }

    pub fn iter(&self) -> impl Iterator<Item = &ZoneRec> {
        self.rows.iter()
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    pub fn clear(&mut self) {
        self.rows.clear();
        self.index.clear();
    }

    /// Replaces the table with `rows` (a restored snapshot). Rows beyond capacity are
    /// dropped and counted; duplicate keys keep the last row.
    pub fn restore(&mut self, rows: &[ZoneRec]) -> usize {
        self.clear();
        for r in rows {
            if let Some(z) = self.upsert(r.instrument_id, r.kind, r.side, r.price, r.first_ts) {
                *z = *r;
            }
        }
        // Duplicate keys share one row: count rows, not inserts.
        self.rows.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engines::records::{ZONE_ABSORPTION, ZONE_ICEBERG};

    #[test]
    fn upsert_finds_the_same_row_and_respects_capacity() {
        let mut z = ZoneTable::new(2);
        z.upsert(1, ZONE_ICEBERG, b'B', 100, 5).unwrap().count += 1;
        z.upsert(1, ZONE_ICEBERG, b'B', 100, 9).unwrap().count += 1;
        assert_eq!(z.get(1, ZONE_ICEBERG, b'B', 100).unwrap().count, 2);
        assert_eq!(z.get(1, ZONE_ICEBERG, b'B', 100).unwrap().first_ts, 5);
        assert!(z.upsert(1, ZONE_ABSORPTION, b'B', 100, 5).is_some());
        assert!(z.upsert(2, ZONE_ICEBERG, b'A', 100, 5).is_none());
        assert_eq!(z.dropped, 1);
        let rows: Vec<ZoneRec> = z.iter().copied().collect();
        let mut other = ZoneTable::new(8);
        assert_eq!(other.restore(&rows), 2);
        assert_eq!(other.get(1, ZONE_ICEBERG, b'B', 100).unwrap().count, 2);
    }
}
