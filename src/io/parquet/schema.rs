//! The columns of a Parquet file as tandem sees them: each top-level field, and how its values
//! become cells, or why they cannot (lists, structs, maps, timestamps, decimals, binary, INT96).

use std::path::Path;

use ::parquet::basic::{ConvertedType, LogicalType, Repetition, Type as Physical};
use ::parquet::schema::types::{SchemaDescriptor, Type};

use crate::error::Error;

/// How a column's values become cells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CellKind {
    /// `1` / `0`.
    Bool,
    /// INT32 as a signed or unsigned decimal.
    Int32 { unsigned: bool },
    /// INT64 as a signed or unsigned decimal.
    Int64 { unsigned: bool },
    /// FLOAT, widened to f64 and written in its shortest form.
    Float,
    /// DOUBLE, in its shortest form.
    Double,
    /// UTF-8 text (String, Enum or JSON; plain or dictionary-encoded).
    Utf8,
}

/// One top-level column of a file.
#[derive(Debug, Clone)]
pub struct Column {
    pub name: String,
    /// What the file stores ("DOUBLE", "INT64 (Timestamp)", "a list"), for messages.
    pub stored: String,
    /// How it is read, with its leaf column index and maximum definition level; `None` for a
    /// column tandem does not read.
    pub read: Option<(CellKind, usize, i16)>,
}

impl Column {
    /// The error for reading a column tandem does not read, about `file`.
    pub fn unsupported(&self, file: &Path) -> Error {
        Error::data(
            file,
            format!(
                "column `{}` is {}, which tandem does not read: it reads integers, floats, \
                 doubles, booleans and UTF-8 strings (convert the column, e.g. a timestamp or a \
                 decimal to a number, a category to a string)",
                self.name, self.stored
            ),
        )
    }
}

/// The top-level columns of a file's schema, in file order.
pub fn columns(schema: &SchemaDescriptor) -> Vec<Column> {
    schema
        .root_schema()
        .get_fields()
        .iter()
        .map(|field| {
            let name = field.name().to_string();
            let leaf = schema
                .columns()
                .iter()
                .position(|c| c.path().parts() == std::slice::from_ref(&name));
            let read = match (leaf, cell_kind(field)) {
                (Some(i), Some(kind)) => Some((kind, i, schema.column(i).max_def_level())),
                _ => None,
            };
            Column {
                stored: stored(field),
                name,
                read,
            }
        })
        .collect()
}

/// How a top-level field's values become cells, if tandem reads it.
fn cell_kind(field: &Type) -> Option<CellKind> {
    let info = field.get_basic_info();
    if field.is_group() || info.has_repetition() && info.repetition() == Repetition::REPEATED {
        return None;
    }
    let logical = info.logical_type_ref();
    let converted = info.converted_type();
    let integer =
        |unsigned_converted: &[ConvertedType], signed_converted: &[ConvertedType]| match logical {
            Some(LogicalType::Integer(t)) => Some(!t.is_signed),
            Some(_) => None,
            None if converted == ConvertedType::NONE => Some(false),
            None if unsigned_converted.contains(&converted) => Some(true),
            None if signed_converted.contains(&converted) => Some(false),
            None => None,
        };
    use ConvertedType as C;
    match field.get_physical_type() {
        Physical::BOOLEAN if logical.is_none() && converted == C::NONE => Some(CellKind::Bool),
        Physical::INT32 => integer(
            &[C::UINT_8, C::UINT_16, C::UINT_32],
            &[C::INT_8, C::INT_16, C::INT_32],
        )
        .map(|unsigned| CellKind::Int32 { unsigned }),
        Physical::INT64 => {
            integer(&[C::UINT_64], &[C::INT_64]).map(|unsigned| CellKind::Int64 { unsigned })
        }
        Physical::FLOAT if logical.is_none() && converted == C::NONE => Some(CellKind::Float),
        Physical::DOUBLE if logical.is_none() && converted == C::NONE => Some(CellKind::Double),
        Physical::BYTE_ARRAY => match (logical, converted) {
            (Some(LogicalType::String | LogicalType::Enum | LogicalType::Json), _) => {
                Some(CellKind::Utf8)
            }
            (None, C::UTF8 | C::ENUM | C::JSON) => Some(CellKind::Utf8),
            _ => None,
        },
        _ => None,
    }
}

/// What a field stores, in words: its physical type and annotation, or the kind of group.
pub fn stored(field: &Type) -> String {
    let info = field.get_basic_info();
    let logical = info.logical_type_ref();
    let converted = info.converted_type();
    let list = matches!(logical, Some(LogicalType::List)) || converted == ConvertedType::LIST;
    let map = matches!(logical, Some(LogicalType::Map))
        || matches!(converted, ConvertedType::MAP | ConvertedType::MAP_KEY_VALUE);
    if field.is_group() {
        return match (list, map) {
            (true, _) => "a list".to_string(),
            (_, true) => "a map".to_string(),
            _ => "a struct (a group of fields)".to_string(),
        };
    }
    let physical = field.get_physical_type();
    let mut words = match (physical, logical, converted) {
        (Physical::BYTE_ARRAY, None, ConvertedType::NONE) => {
            "binary (BYTE_ARRAY not marked as UTF-8 text)".to_string()
        }
        (Physical::INT96, _, _) => "INT96 (a legacy timestamp)".to_string(),
        (p, Some(l), _) => format!("{p} ({})", logical_name(l)),
        (p, None, ConvertedType::NONE) => p.to_string(),
        (p, None, c) => format!("{p} ({c})"),
    };
    if info.has_repetition() && info.repetition() == Repetition::REPEATED {
        words = format!("a repeated {words} (a list)");
    }
    words
}

/// A logical type's name, with an integer's width and sign.
fn logical_name(l: &LogicalType) -> String {
    if let LogicalType::Integer(t) = l {
        let sign = if t.is_signed { "signed" } else { "unsigned" };
        return format!("Integer({}, {sign})", t.bit_width);
    }
    let debug = format!("{l:?}");
    debug
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect()
}
