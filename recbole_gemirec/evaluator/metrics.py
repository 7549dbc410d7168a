"""Metric classes of the extension. Every class defined in this module is registered with RecBole.

(Keep helper base classes elsewhere: RecBole's ``cluster_info`` registers each class defined here.)
"""
