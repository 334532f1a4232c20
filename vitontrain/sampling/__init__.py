"""StableVITON inference: DDIM/PLMS samplers (``samplers``), their timestep grids (``schedule``), try-on generation
on model batches (``inference``), sample sources (``sources``) and the ``vitontrain sample`` twin (``run``)."""

from vitontrain.sampling.inference import SamplingConfig, generate, load_inference_model
from vitontrain.sampling.samplers import ddim_sample, plms_sample, run_sampler
from vitontrain.sampling.schedule import make_timesteps, step_schedule

__all__ = ["SamplingConfig", "generate", "load_inference_model", "ddim_sample", "plms_sample", "run_sampler",
           "make_timesteps", "step_schedule"]
