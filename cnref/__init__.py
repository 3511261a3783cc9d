"""cnref: ControlNet, one paper equation per function, each checked against an independent reference."""
import warnings

# tqdm.auto (imported by our dependencies) warns in a notebook without ipywidgets; cnref draws no widget bars
warnings.filterwarnings("ignore", message="IProgress not found")
from .block import ControlledBlock
from .control import Control, compose, connection_scales, controlled_unet
from .controlnet import ControlNet, ControlNetConfig, unlock_decoder
from .guidance import cfg, guided_eps
from .hint import hint_encoder
from .loss import add_noise, drop_prompts, eps_loss, sample_noise, sample_timesteps
from .zero_conv import zero_conv, zero_conv_grads

__all__ = ["ControlledBlock", "Control", "compose", "connection_scales", "controlled_unet", "ControlNet",
           "ControlNetConfig", "unlock_decoder", "cfg", "guided_eps", "hint_encoder", "add_noise",
           "drop_prompts", "eps_loss", "sample_noise", "sample_timesteps", "zero_conv", "zero_conv_grads"]
