"""The scanning commands' shared option syntax (zfnet/cli/_scan.py): --maps."""
import pytest

from zfnet import ZFNetError
from zfnet.cli._scan import parse_maps


def test_parse_maps_all_first_n_and_lists():
    assert parse_maps("all", 5) == [0, 1, 2, 3, 4]
    assert parse_maps("3", 5) == [0, 1, 2]          # N: the first N maps
    assert parse_maps("4,1", 5) == [1, 4]           # i,j: those maps
    assert parse_maps("2,", 5) == [2]               # a single map
    assert parse_maps("0-2,4", 5) == [0, 1, 2, 4]
    assert parse_maps(" ALL ", 2) == [0, 1]


@pytest.mark.parametrize("bad,message", [("0", "1 <= N <= 5"), ("6", "1 <= N <= 5"), ("1,9", "do not exist"),
                                         ("x", "expected 'all'"), ("1-", "expected 'all'"), (",", "no maps"),
                                         ("-3", "expected 'all'")])
def test_parse_maps_errors_name_the_option_and_the_fix(bad, message):
    with pytest.raises(ZFNetError, match=message) as e:
        parse_maps(bad, 5)
    assert "--maps" in str(e.value)
