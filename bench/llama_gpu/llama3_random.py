"""The model both transformers baselines time (transformers_baseline.py, transformers_decode.py): the
Llama-3-8B architecture with random bf16 weights on the GPU, made from seed 0."""
import torch
from transformers import LlamaConfig, LlamaForCausalLM


def llama3_8b():
    """(config, model): the model in eval mode, its weights bf16, the default dtype left at f32."""
    cfg = LlamaConfig(vocab_size=128256, hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
                      num_attention_heads=32, num_key_value_heads=8, max_position_embeddings=8192,
                      rope_theta=500000.0, rms_norm_eps=1e-5, tie_word_embeddings=False)
    torch.manual_seed(0)
    torch.set_default_dtype(torch.bfloat16)
    with torch.device("cuda"):
        model = LlamaForCausalLM(cfg).eval()
    torch.set_default_dtype(torch.float32)
    return cfg, model
