// SPDX-License-Identifier: GPL-2.0

//! debugfs files that pin the module while they are open.
//!
//! `kernel::debugfs` builds its `file_operations` without `owner` and offers no way to set it,
//! so an open file holds no reference on the module: `rmmod` succeeds with a file open, and the
//! last close then runs debugfs' `full_proxy_release`, which reads the `file_operations` from
//! the freed module. This file is the part of that interface minimm uses, with `owner` set to
//! this module in every `file_operations` it registers. debugfs' proxy takes a reference on
//! the owner at open (`fops_get` in `full_proxy_open_regular`) and drops it at the last close
//! (`fops_put` in `full_proxy_release`), so while any of these files is open `rmmod` fails
//! with `EWOULDBLOCK`.
//!
//! The rest is what the crate does too: text files go through `seq_file` (`single_open`), and
//! the data behind a file only has to outlive the file's removal, because `debugfs_remove`
//! waits for every read, write and seek in flight on it, and debugfs' proxy refuses later ones
//! with `EIO` (a file may stay open after its removal; only its `release`, the kernel's own
//! `single_release`, still runs then). [`File`] owns its data and removes itself before
//! dropping it.
//!
//! Directories nest ([`Dir::subdir`]). `debugfs_remove` of a directory removes everything
//! below it, which would leave the `Dentry` of a file or directory below it dangling; so every
//! file and subdirectory holds a reference to its parent directory and drops it only after
//! removing itself: a directory is removed only once everything below it is, and then alone.
//!
//! When debugfs is unavailable (`debugfs=off`, or creation fails), the directory and files are
//! created empty: they own their data and show nothing, and the module works without them.

use core::{fmt, marker::PhantomData, ptr::NonNull};

use kernel::{
    bindings,
    error::from_err_ptr,
    module::this_module,
    prelude::*,
    seq_file::SeqFile,
    seq_print,
    sync::Arc,
    uaccess::{UserPtr, UserSlice, UserSliceReader},
};

/// Prints a file's data; called for every read of the file from its start.
pub(crate) type Show<T> = fn(&T, &mut fmt::Formatter<'_>) -> fmt::Result;

/// Takes what user space wrote to a file, in one `write` call.
pub(crate) type Store<T> = fn(&T, &mut UserSliceReader) -> Result;

/// An owned debugfs directory or file, removed on drop.
///
/// # Invariants
///
/// `self.0` was returned by `debugfs_create_dir` or `debugfs_create_file_full`, is neither an
/// error nor `NULL`, and has not been removed: this `Dentry` is the only owner that removes it,
/// and its parent directory (if not the debugfs root) is a [`DirNode`] that its owner keeps
/// alive until after this `Dentry` is dropped, so no removal of a directory above takes it
/// along first.
struct Dentry(NonNull<bindings::dentry>);

// SAFETY: A `Dentry` only hands its pointer to `debugfs_create_file_full` and
// `debugfs_create_dir` (as a parent) and to `debugfs_remove`, which may be called from any
// thread.
unsafe impl Send for Dentry {}

// SAFETY: `&Dentry` only gives the pointer out as a parent for `debugfs_create_file_full` and
// `debugfs_create_dir`, which debugfs serialises itself (the parent inode's lock); that is safe
// from several threads.
unsafe impl Sync for Dentry {}

impl Dentry {
    /// Takes ownership of what a debugfs create function returned; an error pointer (debugfs
    /// unavailable, name taken, out of memory) becomes that error.
    ///
    /// # Safety
    ///
    /// `ptr` is the return value of `debugfs_create_dir` or `debugfs_create_file_full`, and
    /// nothing else removes it; its parent, unless the debugfs root, is a [`DirNode`] that the
    /// caller keeps alive until after the returned `Dentry` is dropped.
    unsafe fn from_created(ptr: *mut bindings::dentry) -> Result<Self> {
        // debugfs returns an error pointer on failure, never `NULL`; take `NULL` as ENOENT.
        let ptr = NonNull::new(from_err_ptr(ptr)?).ok_or(ENOENT)?;
        // INVARIANT: a created dentry that is neither an error nor `NULL`, owned by the caller.
        Ok(Self(ptr))
    }

    fn as_ptr(&self) -> *mut bindings::dentry {
        self.0.as_ptr()
    }
}

impl Drop for Dentry {
    /// Context: process context, may sleep (waits for reads and writes in flight).
    fn drop(&mut self) {
        // SAFETY: By the type invariant, `self.0` is a live debugfs dentry that only this
        // `Dentry` removes (no directory above was removed yet: each is kept alive past this
        // drop), and this is the only place it does, once.
        unsafe { bindings::debugfs_remove(self.0.as_ptr()) };
    }
}

/// A directory's dentry, and its parent's, which it keeps alive (and so in place) until it is
/// removed itself.
struct DirNode {
    // Drop order matters: the directory is removed first, then the reference on the parent is
    // dropped, which removes the parent after its last entry.
    dentry: Dentry,
    _parent: Option<Arc<DirNode>>,
}

/// A debugfs directory; it is removed once it, every [`File`] created in it and every
/// subdirectory are dropped.
///
/// `None` when debugfs is unavailable: files created in it are then empty.
pub(crate) struct Dir(Option<Arc<DirNode>>);

impl Dir {
    /// Another handle on the same directory (it stays until every handle, file and
    /// subdirectory is gone).
    pub(crate) fn share(&self) -> Self {
        Self(self.0.clone())
    }

    /// Creates the directory `name` at the root of debugfs.
    ///
    /// Fails only when out of memory; when debugfs cannot create the directory, it logs why
    /// and returns an empty `Dir`.
    ///
    /// Context: process context, may sleep.
    pub(crate) fn new(name: &CStr) -> Result<Self> {
        // SAFETY: `name` is a NUL-terminated string; a `NULL` parent is the debugfs root.
        let ptr =
            unsafe { bindings::debugfs_create_dir(name.as_char_ptr(), core::ptr::null_mut()) };
        // SAFETY: `ptr` is what `debugfs_create_dir` returned, given to nothing else; its
        // parent is the debugfs root.
        match unsafe { Dentry::from_created(ptr) } {
            Ok(dentry) => Ok(Self(Some(Arc::new(
                DirNode {
                    dentry,
                    _parent: None,
                },
                GFP_KERNEL,
            )?))),
            Err(e) => {
                pr_warn!("debugfs {name:?} unavailable ({e:?}): no debugfs files\n");
                Ok(Self(None))
            }
        }
    }

    /// Creates the directory `name` in this one. The new directory keeps this one alive: it
    /// is removed only after the new one and everything in it.
    ///
    /// Fails only when out of memory; when debugfs cannot create the directory (or this one
    /// is empty), the new one is empty too.
    ///
    /// Context: process context, may sleep.
    pub(crate) fn subdir(&self, name: &CStr) -> Result<Self> {
        let Some(parent) = &self.0 else {
            return Ok(Self(None));
        };
        // SAFETY: `name` is a NUL-terminated string and `parent` a live directory (invariant of
        // `Dentry`), kept alive by `self` during the call.
        let ptr =
            unsafe { bindings::debugfs_create_dir(name.as_char_ptr(), parent.dentry.as_ptr()) };
        // SAFETY: `ptr` is what `debugfs_create_dir` returned, given to nothing else; its
        // parent is `parent`, whose reference the new `DirNode` holds until after its own
        // `Dentry` is dropped (field order of `DirNode`).
        match unsafe { Dentry::from_created(ptr) } {
            Ok(dentry) => Ok(Self(Some(Arc::new(
                DirNode {
                    dentry,
                    _parent: Some(parent.clone()),
                },
                GFP_KERNEL,
            )?))),
            Err(e) => {
                pr_warn!("debugfs {name:?} unavailable ({e:?}): its files are left out\n");
                Ok(Self(None))
            }
        }
    }

    /// Creates a read-only file (mode 0400) printing `data` with `show`.
    ///
    /// Context: process context, may sleep.
    pub(crate) fn read_file<T: Send + Sync, E>(
        &self,
        name: &CStr,
        data: impl PinInit<T, E>,
        show: Show<T>,
    ) -> Result<File<T>>
    where
        Error: From<E>,
    {
        self.file(name, Kind::Read, data, Some(show), None)
    }

    /// Creates a write-only file (mode 0200) whose writes go to `store`.
    ///
    /// Context: process context, may sleep.
    pub(crate) fn write_file<T: Send + Sync, E>(
        &self,
        name: &CStr,
        data: impl PinInit<T, E>,
        store: Store<T>,
    ) -> Result<File<T>>
    where
        Error: From<E>,
    {
        self.file(name, Kind::Write, data, None, Some(store))
    }

    /// Creates a read-write file (mode 0600): reads print `data` with `show`, writes go to
    /// `store`.
    ///
    /// Context: process context, may sleep.
    pub(crate) fn read_write_file<T: Send + Sync, E>(
        &self,
        name: &CStr,
        data: impl PinInit<T, E>,
        show: Show<T>,
        store: Store<T>,
    ) -> Result<File<T>>
    where
        Error: From<E>,
    {
        self.file(name, Kind::ReadWrite, data, Some(show), Some(store))
    }

    /// Creates a file of `kind`, whose inode points to a new node holding `data`.
    fn file<T: Send + Sync, E>(
        &self,
        name: &CStr,
        kind: Kind,
        data: impl PinInit<T, E>,
        show: Option<Show<T>>,
        store: Option<Store<T>>,
    ) -> Result<File<T>>
    where
        Error: From<E>,
    {
        let node = KBox::pin_init::<Error>(
            try_pin_init!(Node {
                data <- data,
                show,
                store,
            }? Error),
            GFP_KERNEL,
        )?;
        // The crate's modes: read-only 0400, write-only 0200, read-write 0600.
        let (mode, ops) = match kind {
            Kind::Read => (0o400, Ops::<T>::read()),
            Kind::Write => (0o200, Ops::<T>::write()),
            Kind::ReadWrite => (0o600, Ops::<T>::read_write()),
        };
        let dentry = match &self.0 {
            Some(dir) => {
                // SAFETY:
                // - `name` is a NUL-terminated string and `dir` a live directory (invariant of
                //   `Dentry`), kept alive by the `File` until after the file is removed.
                // - `ops` is one of `Ops<T>`'s tables, which need the inode's private data to
                //   point to a `Node<T>` that outlives the file: the node is boxed (its address
                //   never changes) and `File` drops it only after removing the file.
                let ptr = unsafe {
                    bindings::debugfs_create_file_full(
                        name.as_char_ptr(),
                        mode,
                        dir.dentry.as_ptr(),
                        core::ptr::from_ref::<Node<T>>(&*node).cast_mut().cast(),
                        core::ptr::null(),
                        ops,
                    )
                };
                // SAFETY: `ptr` is what `debugfs_create_file_full` returned, given to nothing else;
                // its parent is `dir`, whose reference the `File` holds until after its `Dentry`
                // is dropped (field order of `File`). A file that cannot be created is left out,
                // as debugfs callers do.
                unsafe { Dentry::from_created(ptr) }.ok()
            }
            None => None,
        };
        // INVARIANT: `dentry`, when there is one, points to `node` and uses `Ops<T>`.
        Ok(File {
            _dentry: dentry,
            _node: node,
            _dir: self.0.clone(),
        })
    }
}

/// Which operations a file has.
#[derive(Clone, Copy)]
enum Kind {
    Read,
    Write,
    ReadWrite,
}

/// What a file's inode points to: its data and callbacks.
#[pin_data]
struct Node<T> {
    #[pin]
    data: T,
    show: Option<Show<T>>,
    store: Option<Store<T>>,
}

/// A debugfs file over a `T`, removed on drop before the `T` is dropped.
///
/// # Invariants
///
/// When `_dentry` exists, it is a file whose inode's private data points to `*_node` and whose
/// operations are one of [`Ops<T>`]'s tables; `_dir` is its parent.
pub(crate) struct File<T> {
    // Drop order matters: the file is removed first (waiting for reads and writes in flight, so
    // that nothing uses the node afterwards), then its node is freed, then the reference on the
    // directory is dropped, which removes the directory after its last file.
    _dentry: Option<Dentry>,
    _node: Pin<KBox<Node<T>>>,
    _dir: Option<Arc<DirNode>>,
}

/// A `Node` shown through its `show` callback.
struct Shown<'a, T>(&'a Node<T>);

impl<T> kernel::fmt::Display for Shown<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.show {
            Some(show) => show(&self.0.data, f),
            None => Ok(()),
        }
    }
}

/// The `file_operations` tables of files over a `T`, each with `owner` set to this module.
///
/// Each table needs the inode's private data to point to a `Node<T>` that stays valid until the
/// file is removed.
struct Ops<T>(PhantomData<T>);

impl<T: Sync> Ops<T> {
    /// Read-only: `seq_file` over `show`.
    const READ: bindings::file_operations = bindings::file_operations {
        owner: this_module::<crate::Minimm>().as_ptr(),
        open: Some(open_seq::<T>),
        read: Some(bindings::seq_read),
        llseek: Some(bindings::seq_lseek),
        release: Some(bindings::single_release),
        ..pin_init::zeroed()
    };

    /// Read-write: `seq_file` over `show`, writes to `store`.
    const READ_WRITE: bindings::file_operations = bindings::file_operations {
        owner: this_module::<crate::Minimm>().as_ptr(),
        open: Some(open_seq::<T>),
        read: Some(bindings::seq_read),
        write: Some(write_seq::<T>),
        llseek: Some(bindings::seq_lseek),
        release: Some(bindings::single_release),
        ..pin_init::zeroed()
    };

    /// Write-only: writes to `store`, no `seq_file`.
    const WRITE: bindings::file_operations = bindings::file_operations {
        owner: this_module::<crate::Minimm>().as_ptr(),
        open: Some(open_plain),
        write: Some(write_plain::<T>),
        llseek: Some(bindings::noop_llseek),
        ..pin_init::zeroed()
    };

    fn read() -> &'static bindings::file_operations {
        &Self::READ
    }

    fn read_write() -> &'static bindings::file_operations {
        &Self::READ_WRITE
    }

    fn write() -> &'static bindings::file_operations {
        &Self::WRITE
    }
}

/// `open` of a file read through `seq_file`: the seq file's private data is the node.
///
/// Context: process context, may sleep; called by debugfs' proxy with the file's removal held
/// off.
///
/// # Safety
///
/// `inode` and `file` are the arguments of a `file_operations::open` call on a file of
/// [`Ops<T>`], so the inode's private data is a live `Node<T>`.
unsafe extern "C" fn open_seq<T: Sync>(
    inode: *mut bindings::inode,
    file: *mut bindings::file,
) -> c_int {
    // SAFETY: `inode` is valid for the duration of `open`.
    let node = unsafe { (*inode).i_private };
    // SAFETY:
    // - `file` is the file being opened, not yet set up by anyone else.
    // - `show_seq::<T>` is only called with the seq file's private data set to `node`, a
    //   `Node<T>` (this function's precondition).
    unsafe { bindings::single_open(file, Some(show_seq::<T>), node) }
}

/// `show` of a `seq_file` over a node: prints it with its `show` callback.
///
/// Context: process context, may sleep; runs inside `seq_read` or `seq_lseek`, which debugfs'
/// proxy calls with the file's removal held off.
///
/// # Safety
///
/// `seq` is a live seq file opened by [`open_seq::<T>`], and the file is not removed yet.
unsafe extern "C" fn show_seq<T: Sync>(seq: *mut bindings::seq_file, _v: *mut c_void) -> c_int {
    // SAFETY: `open_seq::<T>` set the private data to the file's `Node<T>`, which lives until the
    // file is removed (invariant of `File`); nothing mutates it, and `T: Sync` allows sharing.
    let node = unsafe { &*(*seq).private.cast::<Node<T>>() };
    // SAFETY: `seq` is live for this call, and `seq_read`/`seq_lseek` hold its mutex, so no
    // other thread uses it meanwhile.
    let seq_file = unsafe { SeqFile::from_raw(seq) };
    seq_print!(seq_file, "{}", Shown(node));
    0
}

/// `open` of a write-only file: the file's private data is the node.
///
/// Context: process context; called by debugfs' proxy with the file's removal held off.
///
/// # Safety
///
/// `inode` and `file` are the arguments of a `file_operations::open` call.
unsafe extern "C" fn open_plain(inode: *mut bindings::inode, file: *mut bindings::file) -> c_int {
    // SAFETY: Both are valid for the duration of `open`, and `private_data` is the opener's to
    // set.
    unsafe { (*file).private_data = (*inode).i_private };
    0
}

/// `write` of a read-write file.
///
/// Context: process context, may sleep; called by debugfs' proxy with the file's removal held
/// off.
///
/// # Safety
///
/// `file` was opened by [`open_seq::<T>`] and is not removed yet; `buf` is a user pointer.
unsafe extern "C" fn write_seq<T: Sync>(
    file: *mut bindings::file,
    buf: *const c_char,
    count: usize,
    _ppos: *mut bindings::loff_t,
) -> isize {
    // SAFETY: `single_open` in `open_seq::<T>` set the file's private data to its seq file, which
    // lives until the file is released, after the last write.
    let seq = unsafe { (*file).private_data.cast::<bindings::seq_file>() };
    // SAFETY: `open_seq::<T>` set the seq file's private data to the file's `Node<T>`, live until
    // the file is removed (invariant of `File`); `T: Sync` allows sharing it.
    let node = unsafe { &*(*seq).private.cast::<Node<T>>() };
    store(node, buf, count)
}

/// `write` of a write-only file.
///
/// Context: process context, may sleep; called by debugfs' proxy with the file's removal held
/// off.
///
/// # Safety
///
/// `file` was opened by [`open_plain`] on a file of [`Ops<T>`] and is not removed yet; `buf` is
/// a user pointer.
unsafe extern "C" fn write_plain<T: Sync>(
    file: *mut bindings::file,
    buf: *const c_char,
    count: usize,
    _ppos: *mut bindings::loff_t,
) -> isize {
    // SAFETY: `open_plain` set the private data to the inode's, the file's `Node<T>`, live until
    // the file is removed (invariant of `File`); `T: Sync` allows sharing it.
    let node = unsafe { &*(*file).private_data.cast::<Node<T>>() };
    store(node, buf, count)
}

/// Hands `count` bytes at user address `buf` to the node's `store` callback, which copies them
/// itself; no lock is held here.
///
/// Returns `count` on success (the whole write is taken), else the negative errno.
fn store<T>(node: &Node<T>, buf: *const c_char, count: usize) -> isize {
    let Some(store) = node.store else {
        return errno(EINVAL);
    };
    let Ok(written) = isize::try_from(count) else {
        return errno(EINVAL);
    };
    let mut reader = UserSlice::new(UserPtr::from_ptr(buf.cast_mut().cast()), count).reader();
    match store(&node.data, &mut reader) {
        Ok(()) => written,
        Err(e) => errno(e),
    }
}

/// `e` as a `write` return value.
fn errno(e: Error) -> isize {
    // CAST: An errno is a small negative `c_int`, which an `isize` holds on every target.
    e.to_errno() as isize
}
