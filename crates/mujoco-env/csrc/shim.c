/* Thin C shim between Rust and MuJoCo.
 *
 * Compiled by build.rs against the headers of the MuJoCo that is linked, so no struct layout is
 * ever hard-coded on the Rust side: Rust sees opaque pointers, plain ints and double arrays. */
#include <mujoco/mujoco.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The Rust side reads every state array as f64. */
typedef char dsm_mjtnum_is_double[(sizeof(mjtNum) == sizeof(double)) ? 1 : -1];

int dsm_version(void) { return mj_version(); }

int dsm_header_version(void) { return mjVERSION_HEADER; }

/* Compiles the MJCF text `xml` (len bytes) from memory through a virtual file system. On failure
 * returns NULL with a message in err. */
mjModel* dsm_load_xml(const char* name, const char* xml, int len, char* err, int errsz) {
  mjVFS* vfs = (mjVFS*)malloc(sizeof(mjVFS));
  mjModel* m;
  if (!vfs) {
    snprintf(err, errsz, "out of memory allocating the virtual file system");
    return NULL;
  }
  mj_defaultVFS(vfs);
#if mjVERSION_HEADER >= 320
  if (mj_addBufferVFS(vfs, name, xml, len) != 0) {
    snprintf(err, errsz, "could not add %s to the virtual file system", name);
    mj_deleteVFS(vfs);
    free(vfs);
    return NULL;
  }
#else
  {
    int idx;
    if (mj_makeEmptyFileVFS(vfs, name, len) != 0 || (idx = mj_findFileVFS(vfs, name)) < 0) {
      snprintf(err, errsz, "could not add %s to the virtual file system", name);
      mj_deleteVFS(vfs);
      free(vfs);
      return NULL;
    }
    memcpy(vfs->filedata[idx], xml, (size_t)len);
  }
#endif
  m = mj_loadXML(name, vfs, err, errsz);
  mj_deleteVFS(vfs);
  free(vfs);
  return m;
}

void dsm_free_model(mjModel* m) { mj_deleteModel(m); }

mjData* dsm_make_data(const mjModel* m) { return mj_makeData(m); }

void dsm_free_data(mjData* d) { mj_deleteData(d); }

/* Sizes: 0 nq, 1 nv, 2 nu, 3 nbody, 4 na. */
int dsm_size(const mjModel* m, int which) {
  switch (which) {
    case 0: return m->nq;
    case 1: return m->nv;
    case 2: return m->nu;
    case 3: return m->nbody;
    case 4: return m->na;
    default: return -1;
  }
}

double dsm_timestep(const mjModel* m) { return m->opt.timestep; }

/* Model arrays: 0 qpos0 (nq), 1 actuator_ctrlrange (nu x 2), 2 body_mass (nbody). */
const double* dsm_model_array(const mjModel* m, int which) {
  switch (which) {
    case 0: return m->qpos0;
    case 1: return m->actuator_ctrlrange;
    case 2: return m->body_mass;
    default: return NULL;
  }
}

/* Data arrays: 0 qpos (nq), 1 qvel (nv), 2 ctrl (nu), 3 xpos (nbody x 3), 4 xipos (nbody x 3),
 * 5 cinert (nbody x 10), 6 cvel (nbody x 6), 7 qfrc_actuator (nv), 8 cfrc_ext (nbody x 6),
 * 9 qacc_warmstart (nv), 10 act (na). */
double* dsm_data_array(mjData* d, int which) {
  switch (which) {
    case 0: return d->qpos;
    case 1: return d->qvel;
    case 2: return d->ctrl;
    case 3: return d->xpos;
    case 4: return d->xipos;
    case 5: return d->cinert;
    case 6: return d->cvel;
    case 7: return d->qfrc_actuator;
    case 8: return d->cfrc_ext;
    case 9: return d->qacc_warmstart;
    case 10: return d->act;
    default: return NULL;
  }
}

double dsm_get_time(const mjData* d) { return d->time; }

void dsm_set_time(mjData* d, double t) { d->time = t; }

int dsm_body_id(const mjModel* m, const char* name) { return mj_name2id(m, mjOBJ_BODY, name); }

void dsm_reset(const mjModel* m, mjData* d) { mj_resetData(m, d); }

void dsm_forward(const mjModel* m, mjData* d) { mj_forward(m, d); }

/* One environment step: `nstep` calls of mj_step, then mj_rnePostConstraint once (so cacc,
 * cfrc_int and cfrc_ext are valid). ctrl must already be written. */
void dsm_step(const mjModel* m, mjData* d, int nstep) {
  int i;
  for (i = 0; i < nstep; i++) mj_step(m, d);
  mj_rnePostConstraint(m, d);
}
