"""Writes penguins.parquet from penguins.csv with pyarrow: the same table as Parquet.

    python3 examples/penguins/write_parquet.py

species, island and sex are strings, the four measurements doubles, year an int64; `NA` cells
become nulls. Rows go into row groups of 128 rows (three groups) so that reading the file in
blocks crosses row-group boundaries, as it does on real data. Compression is pyarrow's default
(snappy).
"""

from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

HERE = Path(__file__).resolve().parent

TYPES = {
    "species": pa.string(),
    "island": pa.string(),
    "bill_length_mm": pa.float64(),
    "bill_depth_mm": pa.float64(),
    "flipper_length_mm": pa.float64(),
    "body_mass_g": pa.float64(),
    "sex": pa.string(),
    "year": pa.int64(),
}


def read_penguins() -> pa.Table:
    """penguins.csv with the column types above and `NA` as null."""
    return pacsv.read_csv(
        HERE / "penguins.csv",
        convert_options=pacsv.ConvertOptions(
            column_types=TYPES, null_values=["NA"], strings_can_be_null=True
        ),
    )


def main() -> None:
    table = read_penguins()
    out = HERE / "penguins.parquet"
    pq.write_table(table, out, row_group_size=128)
    print(f"wrote {out}: {table.num_rows} rows, {table.num_columns} columns")


if __name__ == "__main__":
    main()
