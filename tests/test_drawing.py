"""Drawing 2-D data on the plane (issue 14: make data in the browser, as GAN Lab does)."""

import numpy as np
import pytest
import torch

from playground.data import DataError, load_data
from playground.drawing import LIMIT, Drawing
from playground.trainer import make_trainer


def test_clicks_put_down_blobs_that_train_as_a_data_set(tmp_path):
    d = Drawing()
    d.add(1.0, -2.0, n=200, spread=0.1)
    d.add(-3.0, 3.0, n=50, spread=0.3)
    pts = d.points
    assert pts.shape == (250, 2) and np.abs(pts).max() <= LIMIT
    np.testing.assert_allclose(pts[:200].mean(0), [1.0, -2.0], atol=0.03)
    np.testing.assert_allclose(pts[:200].std(0), [0.1, 0.1], rtol=0.2)
    np.testing.assert_allclose(pts[200:].mean(0), [-3.0, 3.0], atol=0.15)
    again = Drawing()
    again.add(1.0, -2.0, n=200, spread=0.1)
    np.testing.assert_array_equal(again.points, pts[:200])  # the same clicks draw the same points
    path = d.to_csv(tmp_path)
    data = load_data(str(path))
    assert data.kind == "points" and len(data) == 250
    np.testing.assert_allclose(data.x.numpy(), pts, atol=1e-5)
    t = make_trainer("gan", data)
    t.step()  # it trains like any 2-D set
    d.undo()
    assert len(d.points) == 200 and d.to_csv(tmp_path) != path  # a changed drawing is a new file: new data
    d.clear()
    with pytest.raises(DataError, match="empty: click the plane"):
        d.to_csv(tmp_path)
    with pytest.raises(DataError, match="inside the plane"):
        d.add(5.0, 0.0)


def test_a_click_on_the_picture_lands_where_the_point_is_drawn():
    d = Drawing()
    canvas = d.canvas()
    pic = canvas.draw(torch.tensor([[1.5, -2.5]]), rgb=(255, 0, 0), radius=0)
    ys, xs = np.nonzero((pic == (255, 0, 0)).all(-1))
    x, y = canvas.to_plane(xs.mean(), ys.mean())
    assert abs(x - 1.5) < 0.1 and abs(y + 2.5) < 0.1
