//! SQL text for batches: the placeholders of a statement's `VALUES` rows.

/// `($1, $2), ($3, $4)`: placeholders for `rows` rows of `columns` values, from `$first`.
pub(in crate::store) fn rows_of_placeholders(rows: usize, columns: usize, first: usize) -> String {
    (0..rows)
        .map(|row| {
            let values: Vec<String> = (0..columns)
                .map(|column| format!("${}", first + row * columns + column))
                .collect();
            format!("({})", values.join(", "))
        })
        .collect::<Vec<_>>()
        .join(", ")
}
