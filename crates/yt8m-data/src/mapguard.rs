//! Memory-mapped shards that a truncation cannot kill. Reading a page of a mapped file past
//! its end raises SIGBUS, whose default action ends the process: a shard cut short by another
//! process while the loader reads it (a writer rewriting it, a sync tool, a full disk) would
//! take a whole training run down with no message. Maps registered here get a handler instead:
//! the lost page is replaced by a page of zeros, the map is marked, and the reader reports an
//! error that names the file (zeros also fail the record's CRC). Faults at any other address
//! go to the handler that was installed before ours (Rust's stack-overflow handler, Python's
//! faulthandler, or the default action), as if ours were not there.
//!
//! The same technique as Java's `MappedByteBuffer` (the JVM turns the fault into an
//! `InternalError`) and Mozilla's `MmapFaultHandler`. Linux only; elsewhere maps are unguarded
//! and the documented hazard stays.

#[cfg(target_os = "linux")]
mod imp {
    use std::sync::Once;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    /// Maps guarded at once; more are left unguarded (a loader holds a few per reader thread).
    const SLOTS: usize = 256;
    /// `end` of a slot being written: the handler skips it.
    const BUSY: usize = usize::MAX;

    struct Slot {
        start: AtomicUsize,
        /// 0: free; BUSY: being claimed or released; else one past the map's last byte.
        end: AtomicUsize,
        hit: AtomicBool,
    }

    #[allow(clippy::declare_interior_mutable_const)]
    const FREE: Slot = Slot {
        start: AtomicUsize::new(0),
        end: AtomicUsize::new(0),
        hit: AtomicBool::new(false),
    };
    static TABLE: [Slot; SLOTS] = [FREE; SLOTS];
    static INSTALL: Once = Once::new();
    static INSTALLED: AtomicBool = AtomicBool::new(false);
    static PAGE: AtomicUsize = AtomicUsize::new(4096);
    /// The handler before ours, written once before ours is installed and only read after.
    static mut PREVIOUS: std::mem::MaybeUninit<libc::sigaction> = std::mem::MaybeUninit::uninit();

    fn install() {
        INSTALL.call_once(|| {
            // SAFETY: sysconf and sigaction with valid pointers; PREVIOUS is written here
            // once, before our handler can run (it is installed by the same call that
            // returns the previous one, and the handler reads PREVIOUS only after a fault in
            // a registered map, which needs a registration, which needs INSTALLED).
            unsafe {
                let page = libc::sysconf(libc::_SC_PAGESIZE);
                if page > 0 {
                    PAGE.store(page as usize, Ordering::Relaxed);
                }
                let mut ours: libc::sigaction = std::mem::zeroed();
                let handler: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
                    on_sigbus;
                ours.sa_sigaction = handler as usize;
                ours.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK | libc::SA_NODEFER;
                libc::sigemptyset(&mut ours.sa_mask);
                let prev = &raw mut PREVIOUS;
                if libc::sigaction(libc::SIGBUS, &ours, (*prev).as_mut_ptr()) == 0 {
                    INSTALLED.store(true, Ordering::Release);
                }
            }
        });
    }

    /// The slot whose live map holds `addr`.
    fn find(addr: usize) -> Option<usize> {
        (0..SLOTS).find(|&i| {
            let s = &TABLE[i];
            let end = s.end.load(Ordering::Acquire);
            if end == 0 || end == BUSY {
                return false;
            }
            let start = s.start.load(Ordering::Acquire);
            s.end.load(Ordering::Acquire) == end && addr >= start && addr < end
        })
    }

    extern "C" fn on_sigbus(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
        // Only async-signal-safe work here: atomics, mmap, sigaction.
        // SAFETY: the kernel passes a valid siginfo for SA_SIGINFO handlers.
        let addr = unsafe { (*info).si_addr() } as usize;
        if let Some(i) = find(addr) {
            let page = PAGE.load(Ordering::Relaxed);
            let base = addr & !(page - 1);
            // SAFETY: replaces one page inside a registered read-only map of ours (its range
            // is live until it is unregistered, which happens before it is unmapped) with
            // zeros; the faulting load then runs again and reads them.
            let r = unsafe {
                libc::mmap(
                    base as *mut libc::c_void,
                    page,
                    libc::PROT_READ,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED,
                    -1,
                    0,
                )
            };
            if r != libc::MAP_FAILED {
                TABLE[i].hit.store(true, Ordering::Release);
                return;
            }
        }
        // Not ours: what would have happened without us.
        // SAFETY: PREVIOUS was written before our handler was installed (see `install`).
        unsafe {
            let prev = (*(&raw const PREVIOUS)).assume_init_ref();
            let h = prev.sa_sigaction;
            if h == libc::SIG_DFL || h == libc::SIG_IGN {
                // The default action: the faulting instruction runs again and ends the
                // process; a SIGBUS sent by kill() is raised again.
                let mut dfl: libc::sigaction = std::mem::zeroed();
                dfl.sa_sigaction = libc::SIG_DFL;
                libc::sigaction(libc::SIGBUS, &dfl, std::ptr::null_mut());
                libc::raise(sig);
            } else if prev.sa_flags & libc::SA_SIGINFO != 0 {
                let f: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
                    std::mem::transmute(h);
                f(sig, info, ctx);
            } else {
                let f: extern "C" fn(libc::c_int) = std::mem::transmute(h);
                f(sig);
            }
        }
    }

    /// A registered map; unregistered when dropped (drop it before unmapping).
    pub struct Guard {
        slot: usize,
    }

    impl Guard {
        /// Guards `[ptr, ptr + len)`. None when every slot is taken or the handler could not
        /// be installed (the map is then as unguarded as any other).
        pub fn new(ptr: *const u8, len: usize) -> Option<Guard> {
            install();
            if !INSTALLED.load(Ordering::Acquire) || len == 0 {
                return None;
            }
            for (i, s) in TABLE.iter().enumerate() {
                if s.end
                    .compare_exchange(0, BUSY, Ordering::AcqRel, Ordering::Relaxed)
                    .is_ok()
                {
                    s.hit.store(false, Ordering::Relaxed);
                    s.start.store(ptr as usize, Ordering::Release);
                    s.end.store(ptr as usize + len, Ordering::Release);
                    return Some(Guard { slot: i });
                }
            }
            None
        }

        /// A page of the map was lost (the file shrank while mapped): what was read from it
        /// since is zeros, not the file.
        pub fn truncated(&self) -> bool {
            TABLE[self.slot].hit.load(Ordering::Acquire)
        }
    }

    impl Drop for Guard {
        fn drop(&mut self) {
            let s = &TABLE[self.slot];
            s.end.store(BUSY, Ordering::Release);
            s.start.store(0, Ordering::Release);
            s.hit.store(false, Ordering::Relaxed);
            s.end.store(0, Ordering::Release);
        }
    }
}

#[cfg(not(target_os = "linux"))]
mod imp {
    pub struct Guard;
    impl Guard {
        pub fn new(_ptr: *const u8, _len: usize) -> Option<Guard> {
            None
        }
        pub fn truncated(&self) -> bool {
            false
        }
    }
}

pub use imp::Guard;

impl std::fmt::Debug for Guard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Guard")
            .field("truncated", &self.truncated())
            .finish()
    }
}
