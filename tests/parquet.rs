//! Parquet input and tables read in blocks.
//!
//! - The penguins table as Parquet (examples/penguins/penguins.parquet) reads as the CSV does,
//!   trains to the same loss log and model, and predicts the same.
//! - Every supported column type becomes the cells the CSV reader would hold; unsupported types,
//!   codecs, missing columns, corrupt files and part files that disagree are errors naming the
//!   file and the column or type (fixtures: tests/fixtures/parquet/make_fixtures.py).
//! - A folder of part files and a pattern read as the single file.
//! - Block reads of CSV and Parquet equal slices of the whole table, rows numbered from the
//!   block's start; the block-read split (`open_table_split`) equals `load_split` bit for bit.

mod common;

use std::path::{Path, PathBuf};

use common::cli::{s, scratch, tandem};
use tandem::data::source::read_all;
use tandem::data::{DataSource, Dataset};
use tandem::io::dataset::{load_split, open_table_split, open_table_split_with};
use tandem::io::table::is_missing;
use tandem::io::table_blocks::{open_blocks, read_table};
use tandem::io::Table;
use tandem::Config;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn fixture(name: &str) -> PathBuf {
    root().join("tests/fixtures/parquet").join(name)
}

fn penguins(name: &str) -> PathBuf {
    root().join("examples/penguins").join(name)
}

fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|c| c.to_string()).collect()
}

const PENGUIN_COLUMNS: &[&str] = &[
    "species",
    "island",
    "bill_length_mm",
    "bill_depth_mm",
    "flipper_length_mm",
    "body_mass_g",
    "sex",
    "year",
];

/// The error text of `r`, which must be an error.
fn err<T>(r: tandem::Result<T>) -> String {
    match r {
        Ok(_) => panic!("expected an error"),
        Err(e) => e.to_string(),
    }
}

/// `text` contains every one of `words`.
fn says(text: &str, words: &[&str]) {
    for w in words {
        assert!(text.contains(w), "`{w}` is not in: {text}");
    }
}

// ---------------------------------------------------------------------------------------------
// Penguins: Parquet reads, trains and predicts as CSV does
// ---------------------------------------------------------------------------------------------

#[test]
fn penguins_parquet_holds_the_csv_cells() {
    let csv = Table::read(penguins("penguins.csv")).unwrap();
    let pq = read_table(&penguins("penguins.parquet"), &names(PENGUIN_COLUMNS)).unwrap();
    assert_eq!(pq.rows, 344);
    for name in PENGUIN_COLUMNS {
        let (a, b) = (csv.column(name).unwrap(), pq.column(name).unwrap());
        for (r, (x, y)) in a.iter().zip(b).enumerate() {
            let same = x == y || is_missing(x) && is_missing(y);
            assert!(same, "column {name}, row {r}: csv `{x}`, parquet `{y}`");
        }
    }
}

#[test]
fn penguins_parquet_splits_as_the_csv() {
    let mut a = Config::load(penguins("penguins.toml")).unwrap();
    let mut b = Config::load(penguins("parquet.toml")).unwrap();
    let (sa, sb) = (load_split(&mut a).unwrap(), load_split(&mut b).unwrap());
    assert_eq!(bits(&sa.train), bits(&sb.train));
    assert_eq!(
        bits(sa.valid.as_ref().unwrap()),
        bits(sb.valid.as_ref().unwrap())
    );
    assert_eq!(sa.preprocess, sb.preprocess);
    assert_eq!(a.model, b.model);
}

/// Trains `config` on the CPU into `dir`; returns (stdout, log bytes, model bytes).
fn train(config: &Path, dir: &Path, tag: &str) -> (String, Vec<u8>, Vec<u8>) {
    let (model, log) = (
        dir.join(format!("{tag}.safetensors")),
        dir.join(format!("{tag}.csv")),
    );
    let args = ["train", s(config), "--backend", "cpu", "--quiet"];
    let o = tandem(&[&args[..], &["--out", s(&model), "--log", s(&log)]].concat());
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{tag}: {stderr}");
    let stdout = String::from_utf8_lossy(&o.stdout).into_owned();
    (
        stdout,
        std::fs::read(log).unwrap(),
        std::fs::read(model).unwrap(),
    )
}

#[test]
fn training_and_predicting_on_parquet_equal_csv() {
    let dir = scratch("parquet", "train");
    let (out_csv, log_csv, model_csv) = train(&penguins("penguins.toml"), &dir, "csv");
    let (out_pq, log_pq, model_pq) = train(&penguins("parquet.toml"), &dir, "parquet");
    assert!(log_csv.len() > 1000, "the log has every step");
    assert_eq!(log_csv, log_pq, "the per-step loss logs differ");
    assert_eq!(out_csv, out_pq, "the printed metrics differ");
    assert_eq!(model_csv, model_pq, "the model files differ");

    let model = dir.join("csv.safetensors");
    let mut predictions = Vec::new();
    for features in ["penguins.csv", "penguins.parquet"] {
        let out = dir.join(format!("{features}.pred.csv"));
        let input = penguins(features);
        let args = ["predict", s(&model), "--features", s(&input)];
        let o = tandem(&[&args[..], &["--out", s(&out), "--backend", "cpu"]].concat());
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        predictions.push(std::fs::read_to_string(out).unwrap());
    }
    assert_eq!(predictions[0].lines().count(), 345);
    assert_eq!(predictions[0], predictions[1], "predictions differ");

    let o = tandem(&[
        "eval",
        s(&model),
        "--data",
        s(&penguins("parquet.toml")),
        "--backend",
        "cpu",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let eval = String::from_utf8_lossy(&o.stdout);
    says(&eval, &["342 rows", "species"]);
    let _ = std::fs::remove_dir_all(dir);
}

// ---------------------------------------------------------------------------------------------
// Types, codecs, bad files
// ---------------------------------------------------------------------------------------------

#[test]
fn every_supported_type_becomes_the_csv_cell() {
    let t = read_table(
        &fixture("types.parquet"),
        &names(&[
            "i8", "i16", "i32", "i64", "u8", "u16", "u32", "u64", "f32", "f64", "flag", "s", "ls",
            "cat", "req", "tiny",
        ]),
    )
    .unwrap();
    let expect: &[(&str, [&str; 4])] = &[
        ("i8", ["1", "-2", "", "127"]),
        ("i16", ["300", "-32768", "", "32767"]),
        ("i32", ["70000", "-2147483648", "", "2147483647"]),
        (
            "i64",
            ["1", "-9223372036854775808", "", "9223372036854775807"],
        ),
        ("u8", ["0", "255", "", "7"]),
        ("u16", ["0", "65535", "", "7"]),
        ("u32", ["0", "4294967295", "", "7"]),
        ("u64", ["0", "18446744073709551615", "", "7"]),
        // f32 0.1 widened to f64: its exact value, which parses back to the same f32.
        ("f32", ["0.10000000149011612", "1.5", "", "-0"]),
        ("f64", ["0.1", "1e300", "", "2.5"]),
        ("tiny", ["1e-300", "0.000001", "", "1.2345678901234568e17"]),
        ("flag", ["1", "0", "", "1"]),
        ("s", ["a", "", "", "héllo"]),
        ("ls", ["b", "c,d", "", "e"]),
        ("cat", ["x", "y", "", "x"]),
        ("req", ["5", "6", "7", "8"]),
    ];
    for (name, cells) in expect {
        assert_eq!(t.column(name).unwrap(), cells, "column {name}");
    }
    assert_eq!("0.10000000149011612".parse::<f32>().unwrap(), 0.1f32);
    assert_eq!(
        "1.2345678901234568e17".parse::<f64>().unwrap(),
        123456789012345678.0
    );
}

#[test]
fn unsupported_types_are_errors_naming_file_column_and_type() {
    let file = fixture("unsupported.parquet");
    let cases = [
        ("tags", "a list"),
        ("when", "Timestamp"),
        ("point", "a struct"),
        ("blob", "binary"),
        ("price", "Decimal"),
        ("props", "a map"),
        ("day", "Date"),
    ];
    for (column, kind) in cases {
        let e = err(read_table(&file, &names(&[column])));
        says(
            &e,
            &[
                "unsupported.parquet",
                &format!("`{column}`"),
                kind,
                "does not read",
            ],
        );
    }
    let ok = read_table(&file, &names(&["ok"])).unwrap();
    assert_eq!(ok.column("ok").unwrap(), ["1", "2"]);
    let e = err(read_table(&fixture("int96.parquet"), &names(&["when"])));
    says(&e, &["int96.parquet", "`when`", "INT96"]);
}

#[test]
fn a_missing_column_lists_the_columns_there_are() {
    let e = err(read_table(
        &fixture("types.parquet"),
        &names(&["i8", "nope"]),
    ));
    says(
        &e,
        &[
            "types.parquet",
            "no column `nope`",
            "the columns are: i8, i16, i32",
        ],
    );
}

#[test]
fn codecs_read_alike_and_zstd_is_an_error_naming_it() {
    let cols = names(&["x", "n", "label"]);
    let plain = read_table(&fixture("plain.parquet"), &cols).unwrap();
    assert_eq!(plain.column("x").unwrap(), ["0.5", "-1.25", "", "3"]);
    assert_eq!(plain.column("n").unwrap(), ["1", "2", "3", ""]);
    assert_eq!(plain.column("label").unwrap(), ["a", "b", "a", ""]);
    for codec in ["gzip", "lz4"] {
        let t = read_table(&fixture(&format!("{codec}.parquet")), &cols).unwrap();
        assert_eq!(t.columns, plain.columns, "{codec}");
    }
    let e = err(read_table(&fixture("zstd.parquet"), &cols));
    says(&e, &["zstd.parquet", "`x`", "ZSTD", "snappy"]);
}

#[test]
fn text_that_is_not_utf8_is_an_error_naming_the_row() {
    // plain.parquet stores `label` plainly (no dictionary, no codec): a 4-byte length, then the
    // bytes. Its first value, "a", becomes the byte 0xff.
    let mut bytes = std::fs::read(fixture("plain.parquet")).unwrap();
    let at = bytes
        .windows(5)
        .position(|w| w == [1, 0, 0, 0, b'a'])
        .unwrap();
    bytes[at + 4] = 0xff;
    let dir = scratch("parquet", "utf8");
    let path = dir.join("latin1.parquet");
    std::fs::write(&path, bytes).unwrap();
    let e = err(read_table(&path, &names(&["label"])));
    says(
        &e,
        &["latin1.parquet", "row 0 (0-based)", "`label`", "not UTF-8"],
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_file_without_rows_is_an_error() {
    let e = err(read_table(&fixture("empty.parquet"), &names(&["x"])));
    says(&e, &["empty.parquet", "no rows"]);
}

#[test]
fn corrupted_files_are_errors_naming_them() {
    let dir = scratch("parquet", "corrupt");
    let good = std::fs::read(penguins("penguins.parquet")).unwrap();
    let cols = names(PENGUIN_COLUMNS);
    let n = good.len();
    for cut in [0, 4, 12, 100, n / 2, n - 9, n - 8, n - 1] {
        let path = dir.join(format!("cut-{cut}.parquet"));
        std::fs::write(&path, &good[..cut]).unwrap();
        let e = err(read_table(&path, &cols));
        says(&e, &[&format!("cut-{cut}.parquet")]);
    }
    // Bytes flipped in the data pages and in the footer: an error or other values, never a
    // panic; the footer's own bytes give errors.
    let mut errors = 0;
    for (k, at) in (0..n).step_by(37).enumerate() {
        let mut bad = good.clone();
        bad[at] ^= 0x5a;
        let path = dir.join(format!("flip-{k}.parquet"));
        std::fs::write(&path, &bad).unwrap();
        if let Err(e) = read_table(&path, &cols) {
            says(&e.to_string(), &[&format!("flip-{k}.parquet")]);
            errors += 1;
        }
    }
    assert!(errors > 0, "no flipped byte was noticed");
    let mut bad = good.clone();
    bad[n - 5] ^= 0x01; // the footer length
    let path = dir.join("footer.parquet");
    std::fs::write(&path, &bad).unwrap();
    says(&err(read_table(&path, &cols)), &["footer.parquet"]);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn part_files_that_disagree_are_errors_naming_the_part_and_column() {
    let cols = names(&["x"]);
    let e = err(read_table(&fixture("mismatch-type"), &cols));
    says(
        &e,
        &[
            "mismatch-type/part-1.parquet",
            "`x`",
            "FLOAT",
            "DOUBLE",
            "part-0.parquet",
        ],
    );
    let e = err(read_table(&fixture("mismatch-columns"), &cols));
    says(
        &e,
        &["mismatch-columns/part-1.parquet", "`n`", "part-0.parquet"],
    );
    let e = err(read_table(&fixture("parts/nothing-*.parquet"), &cols));
    says(&e, &["nothing-*.parquet", "no file matches"]);
    let empty = scratch("parquet", "no-parts");
    says(&err(read_table(&empty, &cols)), &["no .parquet file"]);
    let _ = std::fs::remove_dir_all(empty);
}

#[test]
fn a_folder_and_a_pattern_read_as_the_single_file() {
    let cols = names(PENGUIN_COLUMNS);
    let whole = read_table(&penguins("penguins.parquet"), &cols).unwrap();
    for path in [fixture("parts"), fixture("parts/part-*.parquet")] {
        let t = read_table(&path, &cols).unwrap();
        assert_eq!(t.columns, whole.columns, "{}", path.display());
        assert_eq!(t.rows, 344);
        // Row 200 is row 70 of the second part file.
        let e = t.cell_error(200, "sex", "bad").to_string();
        says(&e, &["part-00001.parquet", "row 70 (0-based)", "`sex`"]);
        assert!(!e.contains("line"), "{e}");
    }
}

// ---------------------------------------------------------------------------------------------
// Blocks
// ---------------------------------------------------------------------------------------------

/// Rows `[start, start + len)` of `t` as a table of its own cells.
fn slice(t: &Table, start: usize, len: usize) -> Vec<Vec<String>> {
    t.columns
        .iter()
        .map(|c| c[start..start + len].to_vec())
        .collect()
}

#[test]
fn block_reads_equal_slices_of_the_whole_table() {
    let cols = names(&["sex", "bill_length_mm", "island", "year"]);
    for file in ["penguins.csv", "penguins.parquet"] {
        let path = penguins(file);
        let whole = read_table(&path, &cols).unwrap();
        let want = |c: &str| whole.column(c).unwrap().to_vec();
        let whole_cols: Vec<Vec<String>> = cols.iter().map(|c| want(c)).collect();
        let whole = Table {
            header: cols.clone(),
            columns: whole_cols,
            ..whole
        };
        for index in [1, 7, 64, 65_536] {
            let mut blocks = open_blocks(&path, index).unwrap();
            assert_eq!(blocks.rows(), 344);
            assert_eq!(blocks.header(), names(PENGUIN_COLUMNS).as_slice());
            for (start, len) in [
                (0, 344),
                (0, 1),
                (5, 7),
                (63, 66),
                (127, 2),
                (300, 44),
                (343, 1),
                (17, 0),
            ] {
                let b = blocks.read(start, len, &cols).unwrap();
                assert_eq!(b.rows, len);
                assert_eq!(
                    b.columns,
                    slice(&whole, start, len),
                    "{file} index {index} at {start}+{len}"
                );
            }
            // Forwards and backwards, one block after another.
            for start in (0..344).step_by(50).rev().chain((0..344).step_by(33)) {
                let len = 33.min(344 - start);
                let b = blocks.read(start, len, &cols).unwrap();
                assert_eq!(b.columns, slice(&whole, start, len));
            }
            let mut twin = blocks.try_clone().unwrap();
            assert_eq!(
                twin.read(100, 3, &cols).unwrap().columns,
                slice(&whole, 100, 3)
            );
            says(&err(blocks.read(340, 5, &cols)), &["rows 340..345", "344"]);
            says(
                &err(blocks.read(0, 1, &names(&["nope"]))),
                &["no column `nope`"],
            );
        }
    }
}

#[test]
fn a_block_names_its_rows_from_its_start() {
    let cols = names(&["sex"]);
    let mut csv = open_blocks(&penguins("penguins.csv"), 64).unwrap();
    let e = csv
        .read(100, 5, &cols)
        .unwrap()
        .cell_error(2, "sex", "bad")
        .to_string();
    says(
        &e,
        &[
            "penguins.csv",
            "data row 102 (0-based, line 104 of the file)",
            "`sex`",
        ],
    );
    let mut pq = open_blocks(&penguins("penguins.parquet"), 64).unwrap();
    let e = pq
        .read(100, 5, &cols)
        .unwrap()
        .cell_error(2, "sex", "bad")
        .to_string();
    says(&e, &["penguins.parquet", "row 102 (0-based)", "`sex`"]);
    assert!(!e.contains("line"), "{e}");
}

/// Reads `source` in blocks of `len` rows and puts them together.
fn read_in_blocks(source: &mut dyn DataSource, len: usize) -> Dataset {
    let mut all = source.read(0, 0).unwrap();
    let mut start = 0;
    while start < source.rows() {
        let n = len.min(source.rows() - start);
        let b = source.read(start, n).unwrap();
        all.features.extend(b.features);
        for (t, labels) in all.targets.iter_mut().zip(b.targets) {
            t.extend(labels);
        }
        all.rows += n;
        start += n;
    }
    all
}

/// Bit patterns, so that NaN labels compare equal.
fn bits(d: &Dataset) -> (usize, Vec<u32>, Vec<Vec<u32>>, Vec<String>) {
    let b = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    let targets = d.targets.iter().map(|t| b(t)).collect();
    (d.rows, b(&d.features), targets, d.feature_names.clone())
}

#[test]
fn the_block_read_split_equals_load_split_bit_for_bit() {
    for config in ["penguins.toml", "parquet.toml"] {
        let mut resident = Config::load(penguins(config)).unwrap();
        let split = load_split(&mut resident).unwrap();
        for index in [1, 7, 64, 65_536] {
            let mut cfg = Config::load(penguins(config)).unwrap();
            let (mut train, valid, pre) = match index {
                65_536 => open_table_split(&mut cfg).unwrap(),
                b => open_table_split_with(&mut cfg, b).unwrap(),
            };
            let what = format!("{config}, blocks of {index}");
            assert_eq!(Some(&pre), split.preprocess.as_ref(), "{what}");
            assert_eq!(cfg.model, resident.model, "{what}");
            let mut valid = valid.expect("validation rows");
            assert_eq!(
                bits(&read_all(train.as_mut()).unwrap()),
                bits(&split.train),
                "{what}"
            );
            let want_valid = split.valid.as_ref().unwrap();
            assert_eq!(
                bits(&read_all(valid.as_mut()).unwrap()),
                bits(want_valid),
                "{what}"
            );
            for len in [1, 7, 64] {
                let t = read_in_blocks(train.as_mut(), len);
                assert_eq!(bits(&t), bits(&split.train), "{what}, read {len} at a time");
                let v = read_in_blocks(valid.as_mut(), len);
                assert_eq!(bits(&v), bits(want_valid), "{what}, read {len} at a time");
            }
            assert_eq!(train.label_widths(), vec![1, 1, 1]);
            assert_eq!(train.inputs(), 6);
            says(&train.describe(), &["penguins", "274 of its 344 rows"]);
        }
    }
}

#[test]
fn the_block_read_split_checks_what_load_split_checks() {
    let dir = scratch("parquet", "split-errors");
    std::fs::copy(penguins("penguins.csv"), dir.join("penguins.csv")).unwrap();
    let text = std::fs::read_to_string(penguins("penguins.toml")).unwrap();
    let config = |edit: &str, with: &str| {
        let p = dir.join("run.toml");
        std::fs::write(&p, text.replace(edit, with)).unwrap();
        Config::load(&p).unwrap()
    };
    let e = err(open_table_split(&mut config("\"island\"]", "\"iland\"]")));
    says(&e, &["penguins.csv", "no column `iland`"]);
    let mut npy = config("validation = 0.2", "validation = 0.2");
    npy.data.features = tandem::io::FeatureSource::Npy(dir.join("x.npy"));
    says(&err(open_table_split(&mut npy)), &["npy"]);
    let csv = std::fs::read_to_string(dir.join("penguins.csv")).unwrap();
    std::fs::write(dir.join("penguins.csv"), csv.replacen("39.1", "39.1x", 1)).unwrap();
    let e = err(open_table_split_with(&mut config("", ""), 7));
    says(
        &e,
        &[
            "penguins.csv",
            "data row 0 (0-based, line 2 of the file)",
            "`bill_length_mm`",
            "39.1x",
        ],
    );
    let _ = std::fs::remove_dir_all(dir);
}
