// SPDX-License-Identifier: GPL-2.0

//! The misc device `/dev/minimm`: per-open-file state and the ioctl dispatcher.
//!
//! Every open file is a [`Client`]. Whatever user space allocates through a file belongs to
//! that file and is released when the file is closed, whatever state it was left in.
//!
//! Argument structs are extensible (see `include/uapi/linux/minimm.h`): the first `u32` is the
//! caller's `size`, read before anything else; only `min(size, ours)` bytes are copied. User
//! memory is only ever copied here, outside any lock.

use core::mem::size_of;

use kernel::{
    fs::File,
    miscdevice::{MiscDevice, MiscDeviceRegistration},
    prelude::*,
    sync::Arc,
    transmute::{AsBytes, FromBytes},
    uaccess::{UserPtr, UserSlice},
};

use crate::{uapi, Minimm, Shared};

// SAFETY: `Info` is `repr(C)` with integer fields only and explicit padding (`pad`), so it
// has no uninitialized bytes and no interior mutability, and every bit pattern is valid.
unsafe impl AsBytes for uapi::Info {}
// SAFETY: As above: every bit pattern of `Info` is valid.
unsafe impl FromBytes for uapi::Info {}

// The pure mirror encodes ioctl numbers itself; check it against the kernel's own macros.
const _: () = assert!(
    uapi::IOC_GET_INFO == kernel::ioctl::_IOWR::<uapi::Info>(uapi::IOC_MAGIC, 0x00)
);

/// One open file of `/dev/minimm`.
#[pin_data]
pub(crate) struct Client {
    shared: Arc<Shared>,
}

#[vtable]
impl MiscDevice for Client {
    type Ptr = Pin<KBox<Self>>;

    /// Context: process context, may sleep.
    fn open(_file: &File, misc: &MiscDeviceRegistration<Self>) -> Result<Pin<KBox<Self>>> {
        let shared = Minimm::shared_of(misc);
        KBox::try_pin_init(try_pin_init!(Client { shared }), GFP_KERNEL)
    }

    /// Context: process context, may sleep.
    fn ioctl(me: Pin<&Client>, _file: &File, cmd: u32, arg: usize) -> Result<isize> {
        match cmd {
            uapi::IOC_GET_INFO => me.get_info(UserPtr::from_addr(arg)),
            _ => Err(ENOTTY),
        }
    }
}

impl Client {
    /// `MINIMM_IOC_GET_INFO`.
    fn get_info(&self, arg: UserPtr) -> Result<isize> {
        let mut info = self.shared.info();
        let len = ext_len(arg, uapi::INFO_SIZE_VER0, size_of::<uapi::Info>())?;
        info.size = u32::try_from(len).map_err(|_| EINVAL)?;
        write_prefix(arg, &info, len)?;
        Ok(0)
    }
}

/// Reads the `size` field at the start of an extensible struct and returns how many bytes of
/// it to copy.
///
/// Errors: `EFAULT` if `arg` cannot be read, `EINVAL` if the size is below `ver0`.
fn ext_len(arg: UserPtr, ver0: u32, ours: usize) -> Result<usize> {
    let user_size = UserSlice::new(arg, size_of::<u32>()).reader().read::<u32>()?;
    uapi::ext_copy_len(user_size, ver0, ours).map_err(|_| EINVAL)
}

/// Copies the first `len` bytes of `value` to user space at `arg`.
fn write_prefix<T: AsBytes>(arg: UserPtr, value: &T, len: usize) -> Result {
    let bytes = value.as_bytes().get(..len).ok_or(EINVAL)?;
    UserSlice::new(arg, len).writer().write_slice(bytes)
}

#[kunit_tests(minimm_device)]
mod tests {
    use super::*;

    #[test]
    fn info_reports_the_kernel_page_size() {
        let params = crate::Params { zone_pages: [1, 2, 3] };
        let shared = Shared { params };
        let info = shared.info();
        assert_eq!(info.page_size as usize, kernel::page::PAGE_SIZE);
        assert_eq!(info.abi_version, uapi::ABI_VERSION);
        assert_eq!(info.nr_zones, uapi::NR_ZONES);
        assert_eq!(info.max_order, uapi::MAX_ORDER);
        assert_eq!(info.features & !uapi::feat::VALID, 0);
    }

    #[test]
    fn info_bytes_are_the_c_layout() {
        let info = uapi::Info { size: 32, abi_version: 1, features: 0x0102, ..Default::default() };
        let b = info.as_bytes();
        assert_eq!(b.len(), uapi::INFO_SIZE_VER0 as usize);
        assert_eq!(&b[0..4], &32u32.to_ne_bytes());
        assert_eq!(&b[8..16], &0x0102u64.to_ne_bytes());
    }
}
