"""tabs_assets.science.models.autoencoders: the AE and the VAE."""

import torch

from tabs_assets.science.models.autoencoders import Autoencoder, Vae


def test_autoencoder_and_vae_shapes() -> None:
    torch.manual_seed(0)
    paths = torch.randn(4, 9, 5)
    for model in (Autoencoder(5, 2, [16]), Vae(5, 2, [16], beta=0.5)):
        model.eval()
        z = model.encode(paths)
        assert z.shape == (4, 9, 2)
        assert model.decode(z).shape == (4, 9, 5)
        assert model.latent_dim == 2
        assert model.loss(paths[0]).shape == ()


def test_vae_is_deterministic_at_eval_only() -> None:
    torch.manual_seed(0)
    vae = Vae(3, 2, [8])
    x = torch.randn(10, 3)
    vae.eval()
    mean, _ = vae.encode_distribution(x)
    assert torch.equal(vae.encode(x), vae.encode(x))
    assert torch.equal(vae.encode(x), mean)
    vae.train()
    assert not torch.equal(vae.encode(x), vae.encode(x))
