//! One file of an image mapped from its extents: consecutive mappings of the image's ranges
//! into one reserved region, so that a fragmented file reads as one slice without a copy.
//! Unix only (Windows maps a view at one file offset; a fragmented file is read there).

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::ptr::NonNull;

use super::Piece;

/// A reserved region with the pieces mapped into it, unmapped on drop.
pub(super) struct Stitched {
    base: NonNull<u8>,
    len: usize,
    reserved: usize,
}

// SAFETY: the region is read-only and owned by this value alone.
unsafe impl Send for Stitched {}
unsafe impl Sync for Stitched {}

impl Stitched {
    /// Maps `pieces` of `file` one after another; `None` when they are not all at page
    /// boundaries (in the file and in the result), which a mapping needs.
    pub(super) fn map(file: &File, pieces: &[Piece], len: usize) -> Option<io::Result<Stitched>> {
        // SAFETY: sysconf has no preconditions.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        let page = u64::try_from(page).ok().filter(|p| p.is_power_of_two())?;
        let mut at = 0u64;
        for piece in pieces {
            let aligned = at % page == 0 && piece.offset.is_none_or(|o| o % page == 0);
            if !aligned {
                return None;
            }
            at += piece.len;
        }
        if at != len as u64 || len == 0 {
            return None;
        }
        let reserved = (len as u64).div_ceil(page).checked_mul(page)? as usize;
        Some(Self::map_aligned(
            file,
            pieces,
            len,
            reserved,
            page as usize,
        ))
    }

    fn map_aligned(
        file: &File,
        pieces: &[Piece],
        len: usize,
        reserved: usize,
        page: usize,
    ) -> io::Result<Stitched> {
        // SAFETY: a fresh private anonymous mapping (zeros: sparse pieces stay so), read-only.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                reserved,
                libc::PROT_READ,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let stitched = Stitched {
            base: NonNull::new(base.cast()).ok_or_else(io::Error::last_os_error)?,
            len,
            reserved,
        };
        let mut at = 0usize;
        for piece in pieces {
            let Some(offset) = piece.offset else {
                at += piece.len as usize;
                continue;
            };
            let offset = libc::off_t::try_from(offset)
                .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "offset too large"))?;
            // Whole pages: a piece that ends mid-page is the last one (the checks above).
            let span = (piece.len as usize).next_multiple_of(page);
            let span = span.min(reserved - at);
            // SAFETY: the target range lies inside the region this value reserved; MAP_FIXED
            // replaces only those pages. Private and read-only, as for every mapped file.
            let mapped = unsafe {
                libc::mmap(
                    stitched.base.as_ptr().add(at).cast(),
                    span,
                    libc::PROT_READ,
                    libc::MAP_PRIVATE | libc::MAP_FIXED,
                    file.as_raw_fd(),
                    offset,
                )
            };
            if mapped == libc::MAP_FAILED {
                return Err(io::Error::last_os_error());
            }
            at += piece.len as usize;
        }
        Ok(stitched)
    }

    pub(super) fn bytes(&self) -> &[u8] {
        // SAFETY: `len` bytes of the region are mapped readable for as long as self lives.
        unsafe { std::slice::from_raw_parts(self.base.as_ptr(), self.len) }
    }
}

impl Drop for Stitched {
    fn drop(&mut self) {
        // SAFETY: the region was mapped by `map_aligned` and is not used after this.
        unsafe {
            libc::munmap(self.base.as_ptr().cast(), self.reserved);
        }
    }
}
