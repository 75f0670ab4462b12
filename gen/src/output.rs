//! Writing one CSV file: into `<name>.part` first, renamed into place only when complete, so a
//! crashed or failed run never leaves a truncated file under the real name.

use std::fs::File;
use std::path::{Path, PathBuf};

use crate::GenError;

/// A CSV file being written.
pub(crate) struct CsvOut {
    writer: csv::Writer<File>,
    part: PathBuf,
    path: PathBuf,
}

impl CsvOut {
    /// Creates `path.part` and writes the header row.
    pub(crate) fn create(path: &Path, header: &[&str]) -> Result<Self, GenError> {
        let mut part = path.as_os_str().to_owned();
        part.push(".part");
        let part = PathBuf::from(part);
        let file = File::create(&part).map_err(|source| GenError::Io { path: part.clone(), source })?;
        let writer = csv::WriterBuilder::new().buffer_capacity(1 << 18).from_writer(file);
        let mut out = Self { writer, part, path: path.to_path_buf() };
        out.write(header)?;
        Ok(out)
    }

    /// Writes one record.
    pub(crate) fn write<I>(&mut self, record: I) -> Result<(), GenError>
    where
        I: IntoIterator,
        I::Item: AsRef<[u8]>,
    {
        self.writer.write_record(record).map_err(|source| GenError::Csv { path: self.part.clone(), source })
    }

    /// Flushes and moves the file to its real name.
    pub(crate) fn finish(mut self) -> Result<(), GenError> {
        self.writer.flush().map_err(|source| GenError::Io { path: self.part.clone(), source })?;
        drop(self.writer);
        std::fs::rename(&self.part, &self.path).map_err(|source| GenError::Io { path: self.path.clone(), source })
    }
}
