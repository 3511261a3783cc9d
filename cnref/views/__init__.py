"""Views: tables, figures, the README's generated part, the book, and one helper object per notebook. They read
the lab's results and claims and draw them; they compute no verdict of their own. May import every layer below
(cnref.lab, cnref.measure, cnref.mini, cnref.successors, cnref.paper); only cnref.cli imports them."""
