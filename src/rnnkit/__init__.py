"""rnnkit: recurrent networks (LSTM, GRU) that train well."""

from rnnkit.cells import GRUCell, LSTMCell
from rnnkit.rnn import GRU, LSTM
from rnnkit.state import detach_state

__all__ = ["LSTM", "GRU", "LSTMCell", "GRUCell", "detach_state"]
__version__ = "0.1.0"
