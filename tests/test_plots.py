from textgen.fs import write_bytes
from textgen.plots import LossCurve, loss_plot


def test_a_loss_plot_is_a_non_empty_png(tmp_path):
    curves = [LossCurve("run a", [100, 200, 300], [60.0, 55.0, 52.0], updates_per_epoch=150),
              LossCurve("run b", [100, 200], [62.0, 58.0], updates_per_epoch=150)]
    write_bytes(tmp_path / "loss.png", loss_plot(curves))
    data = (tmp_path / "loss.png").read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 5000
    assert [p.name for p in tmp_path.iterdir()] == ["loss.png"]
