//! The booker's month calendar (pure): weeks of day cells starting on the locale's first
//! weekday, each day marked free (it has slots), selected, today or outside the range.

use jiff::civil::{Date, Weekday};
use serde::Serialize;
use std::collections::BTreeSet;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Cell {
    /// `YYYY-MM-DD`; empty for the padding before the 1st and after the last day.
    pub date: String,
    pub day: i8,
    pub free: bool,
    pub selected: bool,
    pub today: bool,
}

/// The weeks of `year`-`month`, each seven cells, starting on `week_start`.
pub fn weeks(
    year: i16,
    month: i8,
    week_start: Weekday,
    free: &BTreeSet<Date>,
    selected: Option<Date>,
    today: Date,
) -> Vec<Vec<Cell>> {
    let Ok(first) = Date::new(year, month, 1) else {
        return Vec::new();
    };
    let lead = first.weekday().since(week_start) as usize;
    let mut cells: Vec<Cell> = (0..lead).map(|_| blank()).collect();
    let mut d = first;
    while d.month() == month && d.year() == year {
        cells.push(Cell {
            date: d.to_string(),
            day: d.day(),
            free: free.contains(&d),
            selected: selected == Some(d),
            today: d == today,
        });
        match d.tomorrow() {
            Ok(n) => d = n,
            Err(_) => break,
        }
    }
    while cells.len() % 7 != 0 {
        cells.push(blank());
    }
    cells.chunks(7).map(<[Cell]>::to_vec).collect()
}

fn blank() -> Cell {
    Cell {
        date: String::new(),
        day: 0,
        free: false,
        selected: false,
        today: false,
    }
}

/// The month before and after `year`-`month`.
pub fn neighbours(year: i16, month: i8) -> ((i16, i8), (i16, i8)) {
    let prev = if month == 1 {
        (year - 1, 12)
    } else {
        (year, month - 1)
    };
    let next = if month == 12 {
        (year + 1, 1)
    } else {
        (year, month + 1)
    };
    (prev, next)
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::date;

    #[test]
    fn march_2026_starts_on_a_sunday_and_marks_free_days() {
        let free: BTreeSet<Date> = [date(2026, 3, 10), date(2026, 3, 31)].into();
        let today = date(2026, 3, 9);
        let w = weeks(
            2026,
            3,
            Weekday::Sunday,
            &free,
            Some(date(2026, 3, 10)),
            today,
        );
        assert_eq!(w.len(), 5);
        assert_eq!(w[0][0].day, 1, "1 March 2026 is a Sunday");
        let w_de = weeks(2026, 3, Weekday::Monday, &free, None, today);
        assert_eq!(w_de.len(), 6, "Monday-first weeks need a sixth row");
        assert_eq!(w_de[0][6].day, 1);
        assert!(w_de[0][..6].iter().all(|c| c.date.is_empty()));
        let cells: Vec<&Cell> = w.iter().flatten().filter(|c| c.day > 0).collect();
        assert_eq!(cells.len(), 31);
        let tenth = cells.iter().find(|c| c.day == 10).unwrap();
        assert!(tenth.free && tenth.selected && !tenth.today);
        assert!(cells.iter().find(|c| c.day == 9).unwrap().today);
        assert_eq!(cells.iter().filter(|c| c.free).count(), 2);
        assert!(w.iter().all(|week| week.len() == 7));
    }

    #[test]
    fn months_wrap_at_the_year() {
        assert_eq!(neighbours(2026, 1), ((2025, 12), (2026, 2)));
        assert_eq!(neighbours(2026, 12), ((2026, 11), (2027, 1)));
    }
}
