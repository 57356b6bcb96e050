"""rnnkit: recurrent networks (LSTM, GRU) that train well."""

from rnnkit import export, init
from rnnkit.cells import GRUCell, LSTMCell
from rnnkit.losses import activation_regularization, temporal_activation_regularization
from rnnkit.regularizers import SequenceMasks, embedding_dropout
from rnnkit.rnn import GRU, LSTM
from rnnkit.state import detach_state

__all__ = ["LSTM", "GRU", "LSTMCell", "GRUCell", "detach_state", "init", "export",
           "SequenceMasks", "embedding_dropout", "activation_regularization",
           "temporal_activation_regularization"]
__version__ = "0.1.0"
