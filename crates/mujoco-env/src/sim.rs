//! Safe wrapper around one MuJoCo model and its data, through the C shim in `csrc/shim.c`.
//!
//! The shim is compiled against the headers of the MuJoCo that is linked, so this module never
//! sees a MuJoCo struct: it holds opaque pointers and reads `f64` arrays whose lengths come from
//! the model's sizes.

use std::ffi::{CString, c_char, c_int, c_void};
use std::ptr::NonNull;

use crate::EnvError;

unsafe extern "C" {
    fn dsm_version() -> c_int;
    fn dsm_load_xml(
        name: *const c_char,
        xml: *const c_char,
        len: c_int,
        err: *mut c_char,
        errsz: c_int,
    ) -> *mut c_void;
    fn dsm_free_model(m: *mut c_void);
    fn dsm_make_data(m: *const c_void) -> *mut c_void;
    fn dsm_free_data(d: *mut c_void);
    fn dsm_size(m: *const c_void, which: c_int) -> c_int;
    fn dsm_timestep(m: *const c_void) -> f64;
    fn dsm_model_array(m: *const c_void, which: c_int) -> *const f64;
    fn dsm_data_array(d: *mut c_void, which: c_int) -> *mut f64;
    fn dsm_get_time(d: *const c_void) -> f64;
    fn dsm_set_time(d: *mut c_void, t: f64);
    fn dsm_body_id(m: *const c_void, name: *const c_char) -> c_int;
    fn dsm_reset(m: *const c_void, d: *mut c_void);
    fn dsm_forward(m: *const c_void, d: *mut c_void);
    fn dsm_step(m: *const c_void, d: *mut c_void, nstep: c_int);
}

/// `mj_version()` of the linked library.
pub(crate) fn version() -> i32 {
    // SAFETY: no arguments, no state.
    unsafe { dsm_version() }
}

/// Data arrays the shim exposes (indices of `dsm_data_array`).
#[derive(Clone, Copy)]
pub(crate) enum Array {
    Qpos = 0,
    Qvel = 1,
    Ctrl = 2,
    Xpos = 3,
    Xipos = 4,
    Cinert = 5,
    Cvel = 6,
    QfrcActuator = 7,
    CfrcExt = 8,
    QaccWarmstart = 9,
    Act = 10,
}

/// The arrays an [`crate::EnvSnapshot`] records after `time`: the inputs of `mj_step` (qpos,
/// qvel, act, ctrl and the solver warm start `qacc_warmstart`) and the derived arrays the tasks
/// read, exactly as the last step left them (after `mj_step` some lag the state by one substep,
/// and the reward reads them before the next step).
const STATE_ARRAYS: [Array; 11] = [
    Array::Qpos,
    Array::Qvel,
    Array::Act,
    Array::Ctrl,
    Array::QaccWarmstart,
    Array::Xpos,
    Array::Xipos,
    Array::Cinert,
    Array::Cvel,
    Array::QfrcActuator,
    Array::CfrcExt,
];

/// One compiled model with its data.
pub(crate) struct Sim {
    m: NonNull<c_void>,
    d: NonNull<c_void>,
    /// `data_ptr[a]` and `data_len[a]` for every [`Array`].
    data_ptr: [*mut f64; 11],
    data_len: [usize; 11],
    pub(crate) nq: usize,
    pub(crate) nv: usize,
    pub(crate) nu: usize,
    pub(crate) nbody: usize,
}

// SAFETY: mjModel/mjData are plain heap memory owned by this value and not tied to a thread;
// all mutation goes through `&mut self`.
unsafe impl Send for Sim {}

impl Sim {
    /// Compiles MJCF text from memory (MuJoCo's virtual file system) and allocates its data.
    pub(crate) fn load(name: &'static str, xml: &str) -> Result<Self, EnvError> {
        let err_model = |message: String| EnvError::Model {
            model: name,
            message,
        };
        let cname = CString::new(name).map_err(|e| err_model(e.to_string()))?;
        let len = c_int::try_from(xml.len()).map_err(|e| err_model(e.to_string()))?;
        let mut err = vec![0 as c_char; 1000];
        // SAFETY: all pointers are valid for the stated lengths; the shim copies the text.
        let m = unsafe {
            dsm_load_xml(
                cname.as_ptr(),
                xml.as_ptr().cast(),
                len,
                err.as_mut_ptr(),
                err.len() as c_int,
            )
        };
        let Some(m) = NonNull::new(m) else {
            let bytes: Vec<u8> = err
                .iter()
                .take_while(|&&c| c != 0)
                // `c_char` is `i8` on x86-64 and `u8` on aarch64: its byte either way.
                .map(|&c| c.to_ne_bytes()[0])
                .collect();
            return Err(err_model(String::from_utf8_lossy(&bytes).into_owned()));
        };
        // SAFETY: m is a valid model.
        let d = unsafe { dsm_make_data(m.as_ptr()) };
        let Some(d) = NonNull::new(d) else {
            // SAFETY: m was returned by dsm_load_xml and is freed once.
            unsafe { dsm_free_model(m.as_ptr()) };
            return Err(err_model("mj_makeData failed".into()));
        };
        // SAFETY: m is valid; sizes are non-negative ints.
        let size = |w| unsafe { dsm_size(m.as_ptr(), w) }.max(0) as usize;
        let (nq, nv, nu, nbody, na) = (size(0), size(1), size(2), size(3), size(4));
        let data_len = [
            nq,
            nv,
            nu,
            nbody * 3,
            nbody * 3,
            nbody * 10,
            nbody * 6,
            nv,
            nbody * 6,
            nv,
            na,
        ];
        let mut data_ptr = [std::ptr::null_mut(); 11];
        for (i, p) in data_ptr.iter_mut().enumerate() {
            // SAFETY: d is valid; the pointers live as long as d (mjData never reallocates).
            *p = unsafe { dsm_data_array(d.as_ptr(), i as c_int) };
        }
        Ok(Self {
            m,
            d,
            data_ptr,
            data_len,
            nq,
            nv,
            nu,
            nbody,
        })
    }

    /// A data array, as MuJoCo last left it.
    pub(crate) fn get(&self, a: Array) -> &[f64] {
        let i = a as usize;
        // SAFETY: pointer and length come from the model's sizes; `&self` excludes mutation.
        unsafe { std::slice::from_raw_parts(self.data_ptr[i], self.data_len[i]) }
    }

    /// A data array, writable.
    pub(crate) fn get_mut(&mut self, a: Array) -> &mut [f64] {
        let i = a as usize;
        // SAFETY: as in `get`, and `&mut self` makes the borrow unique.
        unsafe { std::slice::from_raw_parts_mut(self.data_ptr[i], self.data_len[i]) }
    }

    fn model_array(&self, which: c_int, len: usize) -> Vec<f64> {
        // SAFETY: m is valid and the array has `len` entries.
        unsafe { std::slice::from_raw_parts(dsm_model_array(self.m.as_ptr(), which), len) }.to_vec()
    }

    /// `m.qpos0`.
    pub(crate) fn qpos0(&self) -> Vec<f64> {
        self.model_array(0, self.nq)
    }

    /// `m.actuator_ctrlrange`, flattened (low, high) per actuator.
    pub(crate) fn ctrlrange(&self) -> Vec<f64> {
        self.model_array(1, self.nu * 2)
    }

    /// `m.body_mass`.
    pub(crate) fn body_mass(&self) -> Vec<f64> {
        self.model_array(2, self.nbody)
    }

    /// `m.opt.timestep`.
    pub(crate) fn timestep(&self) -> f64 {
        // SAFETY: m is valid.
        unsafe { dsm_timestep(self.m.as_ptr()) }
    }

    /// Id of the body called `name`, if there is one.
    pub(crate) fn body_id(&self, name: &str) -> Option<usize> {
        let c = CString::new(name).ok()?;
        // SAFETY: m is valid, c is NUL-terminated.
        let id = unsafe { dsm_body_id(self.m.as_ptr(), c.as_ptr()) };
        usize::try_from(id).ok()
    }

    /// `d.time`.
    pub(crate) fn time(&self) -> f64 {
        // SAFETY: d is valid.
        unsafe { dsm_get_time(self.d.as_ptr()) }
    }

    /// Sets `d.time`.
    pub(crate) fn set_time(&mut self, t: f64) {
        // SAFETY: d is valid; `&mut self` makes the write unique.
        unsafe { dsm_set_time(self.d.as_ptr(), t) }
    }

    /// The state an [`crate::EnvSnapshot`] records: time, then the [`STATE_ARRAYS`].
    pub(crate) fn state(&self) -> Vec<f64> {
        let mut s = vec![self.time()];
        for a in STATE_ARRAYS {
            s.extend_from_slice(self.get(a));
        }
        s
    }

    /// Length of [`Self::state`].
    pub(crate) fn state_len(&self) -> usize {
        1 + STATE_ARRAYS
            .iter()
            .map(|&a| self.data_len[a as usize])
            .sum::<usize>()
    }

    /// Writes a [`Self::state`] back verbatim. No `mj_forward`: it would refresh the lagged
    /// arrays and overwrite the warm start, and the next `mj_step` recomputes everything else
    /// from these inputs, so the run continues bit for bit.
    pub(crate) fn set_state_exact(&mut self, state: &[f64]) {
        debug_assert_eq!(state.len(), self.state_len());
        self.set_time(state[0]);
        let mut at = 1;
        for a in STATE_ARRAYS {
            let dst = self.get_mut(a);
            let n = dst.len();
            dst.copy_from_slice(&state[at..at + n]);
            at += n;
        }
    }

    /// `mj_resetData`.
    pub(crate) fn reset_data(&mut self) {
        // SAFETY: m and d are valid and belong together.
        unsafe { dsm_reset(self.m.as_ptr(), self.d.as_ptr()) }
    }

    /// `mj_forward`.
    pub(crate) fn forward(&mut self) {
        // SAFETY: as above.
        unsafe { dsm_forward(self.m.as_ptr(), self.d.as_ptr()) }
    }

    /// `nstep` calls of `mj_step`, then `mj_rnePostConstraint` once.
    pub(crate) fn step(&mut self, nstep: usize) {
        // SAFETY: as above.
        unsafe { dsm_step(self.m.as_ptr(), self.d.as_ptr(), nstep as c_int) }
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        // SAFETY: both were allocated in `load` and are freed exactly once, data first.
        unsafe {
            dsm_free_data(self.d.as_ptr());
            dsm_free_model(self.m.as_ptr());
        }
    }
}
